"""The tuning flags `oracle` and `tune` share (`tune_contract.steps.SearchArgs`), validated
into one `Settings` before anything starts.

Ranges and cross-flag rules are checked here so that every mistake is reported the same
way: exit 2 with one line `error: <flag>: <reason>`.
"""
from __future__ import annotations

import json
import logging
import math
import sys
from dataclasses import dataclass
from typing import Any

from tune_contract import early_stopping as es
from tune_contract import layout, models
from tune_contract.enums import (
    ALGORITHMS,
    BENCHMARK_FUNCTIONS,
    DEFAULT_MODEL,
    DEFAULT_OBJECTIVE,
    DIRECTIONS,
    FUNCTION_OBJECTIVE,
    OBJECTIVE_DIRECTIONS,
    direction_of,
)
from tune_contract.warm_start import search_identity

from trainer import storage
from trainer.errors import BadInput
from trainer.tuning import search_space as ss

FUNCTIONS = BENCHMARK_FUNCTIONS
TUNING_DIR = layout.TUNING_DIR  # {run_root}/tuning/ is the Keras Tuner project directory
SEARCH_FILE = layout.SEARCH_FILE  # what defines the search, written by the chief (see check_same_search)
DONE_FILE = layout.ORACLE_RESULT_FILE  # the chief's result; its presence means the search is over


@dataclass(frozen=True)
class Settings:
    run_root: str
    algorithm: str
    # the built-in model's (or a benchmark function's) whole space; for a user model only
    # the overrides of what it declares (None: none), see search_hyperparameters
    space: ss.SearchSpace | None
    objective: str
    direction: str
    max_trials: int
    executions_per_trial: int
    epochs: int
    seed: int
    function: str | None = None
    model: str = DEFAULT_MODEL
    # the chief's pruning rule (tune_contract.early_stopping.RULES) and why; not in `identity`
    pruning: str = "none"
    pruning_why: str = ""

    @property
    def user_model(self) -> bool:
        """A model other than the built-in one: its space comes from what it declares."""
        return self.function is None and self.model != DEFAULT_MODEL

    @property
    def tuning_dir(self) -> str:
        return storage.join(self.run_root, TUNING_DIR)

    def identity(self) -> dict:
        """What makes two processes take part in the same search (`search.json`)."""
        return search_identity(model=self.model, algorithm=self.algorithm,
                               search_space=self.space.to_list() if self.space is not None else None,
                               objective=self.objective, direction=self.direction, objective_function=self.function,
                               epochs=self.epochs, executions_per_trial=self.executions_per_trial, seed=self.seed)

    def objective_dict(self) -> dict:
        return {"name": self.objective, "direction": self.direction}


def from_args(args: Any) -> Settings:
    """`args`: the step's `tune_contract.steps.SearchArgs` (or anything with its attributes)."""
    algorithm = _one_of("--algorithm", args.algorithm, ALGORITHMS)
    given = None if args.direction is None else _one_of("--direction", args.direction, DIRECTIONS)
    function = None if args.objective_function is None else _one_of("--objective-function", args.objective_function, FUNCTIONS)
    if function:
        objective = args.objective or FUNCTION_OBJECTIVE
        if objective != FUNCTION_OBJECTIVE:
            raise BadInput("--objective", f"a benchmark function reports '{FUNCTION_OBJECTIVE}', got {objective!r}")
        if given not in (None, "min"):
            raise BadInput("--direction", "benchmark functions are minimised; use min")
        direction = "min"
    else:
        objective = args.objective or DEFAULT_OBJECTIVE
        if not objective.replace("_", "").isalnum():
            raise BadInput("--objective", f"{objective!r} is not a metric name (e.g. val_mae, val_loss, mae)")
        # the same rule as the run form: a metric the contract knows goes one way (the search would
        # otherwise rank the best trials last); a user model's own metric may go either
        known = OBJECTIVE_DIRECTIONS.get(objective)
        if given is not None and known is not None and given != known:
            raise BadInput("--direction", f"must be {known!r} for {objective} (or left out), got {given!r}")
        direction = given or direction_of(objective)
    model = getattr(args, "model", None) or DEFAULT_MODEL
    if not function:
        models.parse(model, "--model")
    # the same rule validate_params runs: well-formed, known names, values the model takes,
    # discrete for grid (for a user model, the names are checked against what it declares
    # once it is loaded: search_hyperparameters)
    space = ss.check(ss.read(args.search_space), algorithm, function, model=model)
    pruning, pruning_why = es.resolve(getattr(args, "early_stopping", None) or "auto", algorithm)
    return Settings(
        run_root=args.run_root,
        algorithm=algorithm,
        space=space,
        objective=objective,
        direction=direction,
        max_trials=positive_int("--max-trials", args.max_trials),
        executions_per_trial=positive_int("--executions-per-trial", args.executions_per_trial),
        epochs=positive_int("--epochs", args.epochs),
        seed=integer("--seed", args.seed, minimum=0),
        function=function,
        model=model,
        pruning=pruning,
        pruning_why=pruning_why,
    )


def search_hyperparameters(settings: Settings, declared=None):
    """The Keras Tuner space the oracle samples: the declarative space for the built-in model
    and the benchmark functions; for a user model, what it declares (`declared`, from
    trainer.user_model: conditional hyperparameters included) with `--search-space` applied."""
    if not settings.user_model:
        return ss.to_hyperparameters(settings.space)
    return ss.apply_overrides(declared, settings.space, settings.model, settings.algorithm)


def load_model(settings: Settings, spec):
    """(the loaded model, the space a trial's model is built from, the oracle's space).
    Builds the model (TensorFlow): a bad model fails here, as a BadInput naming it."""
    from trainer import user_model

    model = user_model.load(settings.model)
    declared = model.declared_space(spec)
    search = search_hyperparameters(settings, declared)
    return model, (search if settings.user_model else declared), search


# -- checks against what another process already started ----------------------------------------


def check_same_search(settings: Settings, recorded: dict | None, who: str) -> None:
    """A worker or a restarted chief must not join a search defined differently: Keras Tuner
    would mix trials of two searches in one directory without a word."""
    if recorded is None:
        return
    mine = settings.identity()
    for key, value in mine.items():
        if recorded.get(key) != value:
            flag = {"search_space": "--search-space", "objective_function": "--objective-function"}.get(
                key, f"--{key.replace('_', '-')}")
            raise BadInput(flag, f"{settings.tuning_dir} holds a search with {key}={json.dumps(recorded.get(key))}; "
                                 f"this {who} has {json.dumps(value)} (same flags everywhere, or a new run root)")


# -- small parsers ----------------------------------------------------------------------------------


def _one_of(flag: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise BadInput(flag, f"unknown value {value!r}; allowed: {', '.join(allowed)}")
    return value


def integer(flag: str, value, minimum: int | None = None) -> int:
    try:
        number = int(str(value))
    except ValueError:
        raise BadInput(flag, f"must be an integer, got {value!r}") from None
    if minimum is not None and number < minimum:
        raise BadInput(flag, f"must be >= {minimum}, got {number}")
    return number


def positive_int(flag: str, value) -> int:
    return integer(flag, value, minimum=1)


def seconds(flag: str, value, allow_none: bool = False) -> float | None:
    if value is None and allow_none:
        return None
    try:
        number = float(str(value))
    except ValueError:
        raise BadInput(flag, f"must be a number of seconds, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise BadInput(flag, f"must be > 0 seconds, got {value!r}")
    return number


def configure_logging() -> None:
    """One line per event on stderr (the pod log); steps call this, library code never does."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
