"""The tuning flags `oracle` and `tune` share (`tune_contract.steps.SearchArgs`, whose
`from_args` has already enforced every range and choice), resolved into one `Settings`
before anything starts: the objective and its direction, the search space, the early-stopping
rule. Cross-flag rules are checked here, reported like every other mistake: exit 2 with one
line `error: <flag>: <reason>`.
"""
from __future__ import annotations

import json
import logging
import sys
from dataclasses import dataclass

from tune_contract import early_stopping as es
from tune_contract import layout, models
from tune_contract.enums import (
    DEFAULT_OBJECTIVE,
    FUNCTION_OBJECTIVE,
    OBJECTIVE_DIRECTIONS,
    direction_of,
)
from tune_contract.steps import SearchArgs
from tune_contract.warm_start import search_identity

from trainer import storage
from trainer.errors import BadInput
from trainer.tuning import search_space as ss

TUNING_DIR = layout.TUNING_DIR  # {run_root}/tuning/ is the Keras Tuner project directory
SEARCH_FILE = layout.SEARCH_FILE  # what defines the search, written by the chief (see check_same_search)
DONE_FILE = layout.ORACLE_RESULT_FILE  # the chief's result; its presence means the search is over


@dataclass(frozen=True)
class Settings:
    """A search: its flags as parsed (`args`) and what they resolve to, each under its flag's name."""

    args: SearchArgs
    objective: str  # --objective, or the default (the benchmark's `value`)
    direction: str  # --direction, or the objective's
    # --search-space read and checked: the built-in model's (or a benchmark function's) whole
    # space; for a user model only the overrides of what it declares (None: none), see
    # search_hyperparameters
    search_space: ss.SearchSpace | None
    # --early-stopping resolved: the chief's rule (tune_contract.early_stopping.RULES) and why;
    # not in `identity`
    early_stopping: str = "none"
    early_stopping_why: str = ""

    @property
    def user_model(self) -> bool:
        """A model other than the built-in one: its space comes from what it declares."""
        return self.args.objective_function is None and not models.is_default(self.args.model)

    @property
    def tuning_dir(self) -> str:
        return storage.join(self.args.run_root, TUNING_DIR)

    def identity(self) -> dict:
        """What makes two processes take part in the same search (`search.json`)."""
        a = self.args
        return search_identity(model=a.model, algorithm=a.algorithm,
                               search_space=self.search_space.to_list() if self.search_space is not None else None,
                               objective=self.objective, direction=self.direction,
                               objective_function=a.objective_function, epochs=a.epochs,
                               executions_per_trial=a.executions_per_trial, seed=a.seed)

    def objective_dict(self) -> dict:
        return {"name": self.objective, "direction": self.direction}


def from_args(args: SearchArgs) -> Settings:
    """`args`: the step's flags, parsed by `SearchArgs.from_args` (ranges and choices enforced)."""
    given, function = args.direction, args.objective_function
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
        models.parse(args.model, "--model")
    # the same rule validate_params runs: well-formed, known names, values the model takes,
    # discrete for grid (for a user model, the names are checked against what it declares
    # once it is loaded: search_hyperparameters)
    space = ss.check(ss.read(args.search_space), args.algorithm, function, model=args.model)
    rule, why = es.resolve(args.early_stopping, args.algorithm)
    return Settings(args=args, objective=objective, direction=direction, search_space=space, early_stopping=rule,
                    early_stopping_why=why)


def search_hyperparameters(settings: Settings, declared=None):
    """The Keras Tuner space the oracle samples: the declarative space for the built-in model
    and the benchmark functions; for a user model, what it declares (`declared`, from
    trainer.user_model: conditional hyperparameters included) with `--search-space` applied."""
    if not settings.user_model:
        return ss.to_hyperparameters(settings.search_space)
    return ss.apply_overrides(declared, settings.search_space, settings.args.model, settings.args.algorithm)


def load_model(settings: Settings, spec):
    """(the loaded model, the space a trial's model is built from, the oracle's space).
    Builds the model (TensorFlow): a bad model fails here, as a BadInput naming it."""
    from trainer import user_model

    model = user_model.load(settings.args.model)
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


def configure_logging() -> None:
    """One line per event on stderr (the pod log); steps call this, library code never does."""
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
