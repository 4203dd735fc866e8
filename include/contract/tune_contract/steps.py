"""One dataclass per trainer step, holding its flags.

The Airflow side builds a step's command line only with `to_argv()`; the trainer parses it
only with `from_args()` (through the parser `add_arguments()` builds), so a flag is named,
typed and defaulted in one place. Every value goes out as `--flag=value`: a value that
begins with `-` (a label `-price`, a source `-data.csv`) can never be read as a flag.

Field names are the argparse destinations: `--max-trials` is `max_trials`. Lists and
mappings (a search space, hyperparameters, a feature spec) travel as compact JSON and are
kept as that text. Numbers are converted and their ranges (`flag(minimum=, maximum=)`) and
closed sets of words (`choices`) are enforced here, by `from_args`, before a step imports
anything heavy; rules across flags are the step's (or `search_space.check`'s).

Every default and range of a step is stated once, here: the trigger form's Params are derived
from these fields (`tune_serve.workflow.params`, tested), and no step parses a flag again.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, TypeVar

from tune_contract.data_roots import ENV as DATA_ROOTS_ENV
from tune_contract.enums import (
    ALGORITHMS,
    BENCHMARK_FUNCTIONS,
    DEFAULT_ALGORITHM,
    DEFAULT_MODEL,
    DEFAULT_OBJECTIVE,
    DIRECTIONS,
    EARLY_STOPPING,
    MAX_INFERRED_CLASSES,
    OBJECTIVES,
    ORACLE_SECRET_FILE_ENV,
    TASKS,
)
from tune_contract.errors import BadInput

S = TypeVar("S", bound="StepArgs")


# A mapping or list sent as JSON text (a search space, hyperparameters, a feature spec).
JSON = Any

# Values several steps share, stated once.
DEFAULT_SEED: Final = 42  # the split, the search and training of a run share one seed
MAX_SEED: Final = 2**31 - 1
MAX_TRIALS: Final = 10_000
MAX_EPOCHS: Final = 10_000  # of a trial (and of a benchmark evaluation)
MAX_SLEEP_SECONDS: Final = 3600.0  # a benchmark's seconds per epoch
MAX_DEADLINE_SECONDS: Final = 7 * 24 * 3600  # a search's deadline: a week


def flag(default: Any = None, help: str = "", *, required: bool = False, env: str | None = None,
         group: str | None = None, choices: Sequence[str] = (), minimum: float | None = None,
         maximum: float | None = None, exclusive_minimum: bool = False,
         exclusive_maximum: bool = False) -> Any:
    """A field that is a command-line flag: `--` + its name with dashes.

    `choices`: the words it takes (for an `int | str` field, the words besides a number);
    `minimum`/`maximum`: the range of a number, inclusive unless `exclusive_*`; `from_args`
    enforces both, and refuses a number that is not finite."""
    return field(default=default, metadata={"help": help, "required": required, "env": env, "group": group,
                                            "choices": tuple(choices), "minimum": minimum, "maximum": maximum,
                                            "exclusive_minimum": exclusive_minimum,
                                            "exclusive_maximum": exclusive_maximum})


@dataclass(frozen=True)
class FlagSpec:
    """What a step states about one flag, for whoever must say the same (the trigger form)."""

    name: str  # the field, e.g. max_trials
    kind: str  # "integer", "number", "string", "integer or word", "json" (text or a mapping/list)
    default: Any  # None: the flag is left out (no default, or a default decided by the step)
    optional: bool  # may be left out (None), e.g. a threshold that is not applied then
    help: str
    choices: tuple[str, ...]
    minimum: float | None
    maximum: float | None
    exclusive_minimum: bool
    exclusive_maximum: bool

    @property
    def flag(self) -> str:
        return _flag_name(self.name)

    def range_text(self) -> str:
        """`>= 1 and <= 10000`, `> 0`, ... ('' without bounds)."""
        parts = []
        if self.minimum is not None:
            parts.append(f"{'>' if self.exclusive_minimum else '>='} {self.minimum}")
        if self.maximum is not None:
            parts.append(f"{'<' if self.exclusive_maximum else '<='} {self.maximum}")
        return " and ".join(parts)

    def in_range(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        low_ok = self.minimum is None or (value > self.minimum if self.exclusive_minimum
                                          else value >= self.minimum)
        high_ok = self.maximum is None or (value < self.maximum if self.exclusive_maximum
                                           else value <= self.maximum)
        return low_ok and high_ok


def _kind(annotation: str) -> str:
    kinds = {part.strip() for part in annotation.split("|")} - {"None"}
    if "JSON" in kinds:
        return "json"
    return {frozenset({"int"}): "integer", frozenset({"float"}): "number", frozenset({"str"}): "string",
            frozenset({"int", "str"}): "integer or word"}[frozenset(kinds)]


def _json_text(value: Any) -> Any:
    return json.dumps(value, separators=(",", ":")) if isinstance(value, (dict, list, tuple)) else value


@dataclass(frozen=True, kw_only=True)
class StepArgs:
    """Flags common to every step."""

    STEP: ClassVar[str] = ""
    HELP: ClassVar[str] = ""

    run_root: str | None = flag(help="storage prefix of this DAG run, {root}/runs/{run_id} (local path or gs://)",
                                env="TRAINER_RUN_ROOT", required=True)
    xcom_file: str | None = flag(help="where the step's JSON result is written "
                                      "(default /airflow/xcom/return.json)", env="TRAINER_XCOM_FILE")

    def __post_init__(self) -> None:
        # every value is held as the trainer reads it (a number as its field's type, a mapping or
        # list as its JSON text), so a step's arguments compare equal after a trip through argv
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                object.__setattr__(self, f.name, _convert(_flag_name(f.name), str(f.type), value))

    # -- Airflow side -------------------------------------------------------------------------

    def to_argv(self) -> list[str]:
        """The step's flags, one `--flag=value` each; None is left out (the trainer's default)."""
        argv = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                continue
            argv.append(f"{_flag_name(f.name)}={value}")
        return argv

    def replace(self: S, **changes: Any) -> S:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """The fields that are set, as JSON-ready values (an XCom); `cls(**d)` builds it back."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if getattr(self, f.name) is not None}

    # -- trainer side -------------------------------------------------------------------------

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        """Every flag as a string option (converted by `from_args`, so a bad number is
        reported like any other bad input: `<flag>: <reason>`, exit 2)."""
        groups: dict[str | None, Any] = {None: parser}
        for f in dataclasses.fields(cls):
            meta = f.metadata
            group = meta.get("group")
            if group not in groups:
                groups[group] = parser.add_argument_group(group)
            default: Any = os.environ.get(meta["env"]) if meta.get("env") else None
            if default is None and f.default is not dataclasses.MISSING:
                default = f.default
            spec = cls.flag_spec(f.name)
            if spec.kind == "integer or word":
                allowed = f"; an integer {spec.range_text()} or {' or '.join(spec.choices)}"
            else:
                allowed = "".join([f"; one of {', '.join(spec.choices)}" if spec.choices else "",
                                   f"; {spec.range_text()}" if spec.range_text() else ""])
            if spec.default is not None and "default" not in spec.help:
                allowed += f" (default {spec.default})"
            notes = "".join([allowed,
                             f" (env {meta['env']})" if meta.get("env") else ""])
            groups[group].add_argument(_flag_name(f.name), dest=f.name, default=default,
                                       help=f"{meta.get('help', '')}{notes}")

    @classmethod
    def flag_spec(cls, name: str) -> FlagSpec:
        """What this step states about its flag `name` (its field)."""
        f = {f.name: f for f in dataclasses.fields(cls)}[name]
        meta = f.metadata
        return FlagSpec(name=name, kind=_kind(str(f.type)), help=meta.get("help", ""),
                        optional="None" in {part.strip() for part in str(f.type).split("|")},
                        default=None if f.default is dataclasses.MISSING else f.default,
                        choices=meta.get("choices", ()), minimum=meta.get("minimum"),
                        maximum=meta.get("maximum"), exclusive_minimum=meta.get("exclusive_minimum", False),
                        exclusive_maximum=meta.get("exclusive_maximum", False))

    @classmethod
    def from_args(cls: type[S], args: argparse.Namespace | dict[str, Any]) -> S:
        """The typed step arguments from parsed flags; raises BadInput naming the flag (and what
        it allows) for a missing required flag, a bad number, a number out of its range or a
        word not among its choices."""
        given = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
        values = {}
        for f in dataclasses.fields(cls):
            value = given.get(f.name)
            if value is None:
                if f.metadata.get("required"):
                    env = f.metadata.get("env")
                    raise BadInput(_flag_name(f.name), "required" + (f" (or set {env})" if env else ""))
                continue
            value = _convert(_flag_name(f.name), str(f.type), value)
            _check(cls.flag_spec(f.name), value)
            values[f.name] = value
        return cls(**values)

    @classmethod
    def from_argv(cls: type[S], argv: Sequence[str]) -> S:
        parser = argparse.ArgumentParser(prog=f"python -m trainer {cls.STEP}")
        cls.add_arguments(parser)
        return cls.from_args(parser.parse_args(list(argv)))


def _flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check(spec: FlagSpec, value: Any) -> None:
    """The flag's range and choices (`flag(minimum=, maximum=, choices=)`)."""
    if spec.kind == "integer or word":  # a count in its range, or one of its words (--standby-tuners all)
        words = " or ".join(repr(word) for word in spec.choices)
        if ((isinstance(value, str) and value not in spec.choices)
                or (isinstance(value, int) and not spec.in_range(value))):
            raise BadInput(spec.flag, f"must be an integer {spec.range_text()} or {words}, got {value!r}")
        return
    if spec.choices and value not in spec.choices:
        raise BadInput(spec.flag, f"unknown value {value!r}; allowed: {', '.join(spec.choices)}")
    if (spec.kind in ("integer", "number") and (spec.range_text() or not math.isfinite(value))
            and not spec.in_range(value)):
        rule = spec.range_text() or "finite"
        raise BadInput(spec.flag, f"must be {rule}, got {value!r}")


def _convert(flag_name: str, annotation: str, value: Any) -> Any:
    kinds = {part.strip() for part in annotation.split("|")} - {"None", "JSON"}
    if isinstance(value, bool):
        raise BadInput(flag_name, f"must be {' or '.join(sorted(kinds))}, got {value!r}")
    if kinds == {"int"}:
        try:
            return int(str(value))
        except ValueError:
            raise BadInput(flag_name, f"must be an integer, got {value!r}") from None
    if kinds == {"float"}:
        try:
            return float(str(value))
        except ValueError:
            what = "a number of seconds" if flag_name.endswith("-seconds") else "a number"
            raise BadInput(flag_name, f"must be {what}, got {value!r}") from None
    if kinds == {"int", "str"}:  # a count or a word (e.g. --standby-tuners all)
        try:
            return int(str(value))
        except ValueError:
            return str(value)
    return _json_text(value) if isinstance(value, (dict, list, tuple)) else str(value)


# -- the steps ------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class PrepareArgs(StepArgs):
    STEP: ClassVar[str] = "prepare"
    HELP: ClassVar[str] = ("Split a CSV/Parquet table (or the bundled `diamonds` data) into train/eval "
                           "TFRecords and write the feature spec.")

    source: str = flag("diamonds", "a CSV or Parquet URI (local path or gs://), or a bundled dataset: "
                                   "diamonds (53,940 diamonds, price regression), titanic (1,316 passengers, "
                                   "survived: binary), iris (150 flowers, species: multiclass)")
    # the roots --source, --feature-spec and --search-space URIs must lie under
    # (tune_contract.data_roots); the plan passes Airflow's, so both sides apply the same; without flag
    # or environment, none
    data_roots: str | None = flag(help="comma-separated folders and gs://BUCKET/PREFIX roots a file named "
                                       "by the run may be read from (default: none, only bundled datasets)",
                                  env=DATA_ROOTS_ENV)
    label: str | None = flag(help="column to predict; default the bundled dataset's (price for diamonds, "
                                  "Species for iris, survived for titanic), required for any other source")
    feature_spec: str | JSON | None = flag(help="JSON/YAML URI or inline JSON: {label?, numeric: "
                                                "[cols]|{col: stats}, categorical: [cols]|{col: vocab}}; "
                                                "default: inferred from dtypes")
    features: str | None = flag(help="comma-separated columns to use as features "
                                     "(default: every other column)")
    eval_fraction: float = flag(0.2, "share of rows held out for validation and evaluation (seeded split)",
                                minimum=0, maximum=1, exclusive_minimum=True, exclusive_maximum=True)
    seed: int = flag(DEFAULT_SEED, "seed of the sample and of the train/eval split", minimum=0,
                     maximum=MAX_SEED)
    sample_rows: int | None = flag(help="use a seeded sample of this many rows "
                                        "(quick runs; default: all rows)",
                                   minimum=2)  # one train and one eval row
    task: str | None = flag(help="regression, binary or multiclass classification; default: inferred from "
                                 "the label column (text or boolean, or integer with at most "
                                 f"{MAX_INFERRED_CLASSES} distinct values: a classification)",
                            choices=TASKS)
    objective: str | None = flag(help="the run's objective, checked against the (inferred) task before any "
                                      "tuning (default: not checked)")
    # the run's model and search, checked here against the feature spec (a CPU pod), so that a
    # model that cannot be imported or built never reaches the chief or a GPU tuner
    model: str = flag(DEFAULT_MODEL, f"the Keras model the run tunes, `module:callable` "
                                     f"(default {DEFAULT_MODEL}); loaded, built and checked against the "
                                     "feature spec before anything is written", group="model check")
    search_space: str | JSON | None = flag(help="the run's search space, checked against what the "
                                                "model declares", group="model check")
    algorithm: str = flag(DEFAULT_ALGORITHM, "the run's search algorithm (grid needs a discrete space)",
                          group="model check", choices=ALGORITHMS)


_SEARCH = "search (identical on the oracle and every tune worker)"


@dataclass(frozen=True, kw_only=True)
class SearchArgs(StepArgs):
    """The flags that define a search: the same on the chief and on every tuner."""

    model: str = flag(DEFAULT_MODEL, "the Keras model to tune and train, package.module:callable, from the "
                                     "models folder (include/models; /opt/models in the trainer image): "
                                     "build(hp, spec, task) returning a keras.Model with one input per "
                                     "feature (docs/contracts.md, Model contract). "
                                     f"Shipped: {DEFAULT_MODEL} (the built-in model, the default), "
                                     "tune_serve_models.wide_and_deep:build (crossed categorical features, "
                                     "tuned deep side) and tune_serve_models.classifier:build (binary or "
                                     "multiclass). The hyperparameters it declares are the search space",
                      group=_SEARCH)
    algorithm: str = flag(DEFAULT_ALGORITHM, "search oracle: tpe (Optuna TPE after a Sobol start), gp "
                                             "(Gaussian-process expected improvement aware of the running "
                                             "trials, after a Sobol start), or Keras Tuner's random, "
                                             "bayesian (Gaussian process), hyperband, grid",
                          group=_SEARCH, choices=ALGORITHMS)
    search_space: str | JSON | None = flag(help="JSON/YAML list of parameters, inline or a URI "
                                         "(default: the tabular model's space)", group=_SEARCH)
    objective: str | None = flag(help=f"metric to optimise (default {DEFAULT_OBJECTIVE}; "
                                      "'value' with --objective-function)", group=_SEARCH)
    direction: str | None = flag(help="whether the objective is minimised or maximised; default: the "
                                      "objective's (errors and losses min; AUC, accuracy, precision, recall "
                                      "max; min for a metric of a user model's own)", group=_SEARCH,
                                 choices=DIRECTIONS)
    max_trials: int = flag(12, "hyperparameter sets to try in all "
                               "(trials seeded by a warm start do not count)",
                           group=_SEARCH, minimum=1, maximum=MAX_TRIALS)
    executions_per_trial: int = flag(1, "models trained per hyperparameter set, averaged "
                                        "(averages out noise)", group=_SEARCH, minimum=1, maximum=20)
    epochs: int = flag(3, "training epochs of each trial; Hyperband's max_epochs", group=_SEARCH, minimum=1,
                       maximum=MAX_EPOCHS)
    seed: int = flag(DEFAULT_SEED, "random seed of the oracle and of each trial's training", group=_SEARCH,
                     minimum=0, maximum=MAX_SEED)
    objective_function: str | None = flag(help="for benchmarks: tune a plain function instead of the Keras "
                                               "model (sleep: fixed-length trials; branin: the Branin "
                                               "function; hartmann6: the 6-dimensional Hartmann function)",
                                          group=_SEARCH, choices=BENCHMARK_FUNCTIONS)
    # not part of what defines the search (a restarted chief may apply another rule): the chief
    # applies it; a tuner reports each epoch only when it is not off
    early_stopping: str = flag("auto", "stop trials that fall behind, across tuners, after any epoch: "
                                       "median (worse than the median of completed trials), asha "
                                       "(asynchronous successive halving: only the best third goes on at "
                                       "epochs 1, 3, 9...) or off. auto: median for bayesian (and tpe, gp), "
                                       "off for random, grid and hyperband. A stopped trial is recorded as "
                                       "pruned, scored at its best epoch, and its tuner takes the next "
                                       "trial at once", group=_SEARCH, choices=EARLY_STOPPING)
    # not part of what defines the search: a restarted chief may get a new file path
    secret_file: str | None = flag(help="file holding the search secret shared by the chief and its tuners",
                                   env=ORACLE_SECRET_FILE_ENV, group="search secret")


@dataclass(frozen=True, kw_only=True)
class OracleArgs(SearchArgs):
    STEP: ClassVar[str] = "oracle"
    HELP: ClassVar[str] = ("Keras Tuner chief: serve trials to the tune workers over gRPC, then report all "
                           "trials ranked.")

    port: int | None = flag(help="gRPC port", env="KERASTUNER_ORACLE_PORT", group="chief", required=True,
                            minimum=1, maximum=65_535)
    bind: str = flag("127.0.0.1", "address to listen on (default 127.0.0.1; 0.0.0.0 in a pod behind "
                                  "a Service)", group="chief")
    lease_seconds: float = flag(600.0, "a tuner silent this long loses its trial to another tuner (seconds)",
                                group="chief", minimum=0, exclusive_minimum=True, maximum=86_400)
    deadline_seconds: float | None = flag(help="stop handing out trials this long after the search first "
                                               "started, and report what completed (default: none)",
                                          group="chief", minimum=0, exclusive_minimum=True,
                                          maximum=MAX_DEADLINE_SECONDS)
    max_handoffs: int = flag(2, "times a trial may lose its worker before it is failed", group="chief",
                             minimum=0)
    warm_start_from: str | None = flag(help="run root of the previous run whose completed trials seed this "
                                            "search when its space and feature spec match (given by the "
                                            "Airflow side, never taken from a run's conf)", group="chief")
    standby_tuners: int | str = flag(1, "once no trial is left to hand out, this many idle tuners keep "
                                        "waiting to take over a trial whose tuner is lost; the other idle "
                                        "tuners stop and free their GPUs. 0: none wait "
                                        "(a trial lost at the tail is not finished)",
                                     group="chief", choices=("all",), minimum=0,
                                     maximum=256)


@dataclass(frozen=True, kw_only=True)
class TuneArgs(SearchArgs):
    STEP: ClassVar[str] = "tune"
    HELP: ClassVar[str] = ("Keras Tuner worker: run trials from the oracle (resuming an interrupted one) "
                           "and report them.")

    tuner_id: str | None = flag(help="stable id of this worker across restarts, e.g. tuner-0",
                                env="KERASTUNER_TUNER_ID", group="worker")
    oracle_address: str | None = flag(help="HOST:PORT of the oracle (default: KERASTUNER_ORACLE_IP:"
                                           "KERASTUNER_ORACLE_PORT)", group="worker")
    heartbeat_seconds: float = flag(10.0, "lease renewal period; keep it well under the oracle's "
                                          "--lease-seconds (default 10)",
                                    group="worker", minimum=0, exclusive_minimum=True)
    poll_seconds: float = flag(2.0, "wait between asks while the oracle has no trial to give yet (default 2)",
                               group="worker", minimum=0, exclusive_minimum=True)
    oracle_wait_seconds: float = flag(3600.0, "give up (exit 1) after the oracle has been unreachable this "
                                              "long (default 3600)",
                                      group="worker", minimum=0, exclusive_minimum=True)
    sleep_seconds: float | None = flag(help="length of an epoch of a benchmark function "
                                            "(default: 1 for sleep, 0 for branin)", group="worker",
                                       minimum=0, maximum=MAX_SLEEP_SECONDS)


@dataclass(frozen=True, kw_only=True)
class TrainArgs(StepArgs):
    STEP: ClassVar[str] = "train"
    HELP: ClassVar[str] = ("Train one configuration with resumable checkpoints and TensorBoard logs, "
                           "then export the SavedModel.")

    hyperparameters: str | JSON = flag("{}", 'JSON object, e.g. {"num_layers": 2, "units": 64, '
                                             '"dropout": 0.1, "learning_rate": 0.001, "batch_size": 128}; '
                                             "missing keys take these defaults, unknown keys are ignored")
    model: str = flag(DEFAULT_MODEL, f"the Keras model to train, `module:callable` (default {DEFAULT_MODEL})")
    rank: int | None = flag(help="place of this configuration in the top-N (0 = best)", required=True,
                            minimum=0)
    trial_id: str | None = flag(help="the tuning trial these hyperparameters come from "
                                     "(echoed in the result)")
    epochs: int = flag(20, "epochs of each full training (at most)", minimum=1, maximum=100_000)
    patience: int = flag(5, "epochs without improvement of the objective before stopping "
                            "(0 = never stop early)", minimum=0, maximum=10_000)
    objective: str | None = flag(help="metric for early stopping (default: the task's, val_mae for a "
                                      "regression, val_auc for binary, val_accuracy for multiclass)",
                                 choices=OBJECTIVES)
    direction: str | None = flag(help="whether --objective improves down (min) or up (max) "
                                      "(default: the objective's)", choices=DIRECTIONS)
    seed: int = flag(DEFAULT_SEED, "seed of weights initialisation, dropout and shuffling", minimum=0,
                     maximum=MAX_SEED)


@dataclass(frozen=True, kw_only=True)
class EvaluateArgs(StepArgs):
    STEP: ClassVar[str] = "evaluate"
    HELP: ClassVar[str] = ("Evaluate a SavedModel with TFMA (overall and per slice), bless it against "
                           "thresholds and the serving baseline.")

    model_path: str | None = flag(help="SavedModel of the candidate (the train step's model_path)",
                                  required=True)
    rank: int | None = flag(help="rank of the candidate; output goes to {run_root}/eval/{rank}/",
                            required=True, minimum=0)
    baseline_model_path: str | None = flag(help="SavedModel serving now; enables --max-mae-increase")
    mae_upper_bound: float | None = flag(help="a candidate with a larger eval MAE is not blessed (default: "
                                              "no bound; with no bound and no model serving yet, the first "
                                              "model is blessed unless its metrics are not finite)",
                                         minimum=0, exclusive_minimum=True)
    max_mae_increase: float | None = flag(help="a candidate may be at most this much worse (absolute MAE) "
                                               "than the baseline, the model serving now (0: no worse; "
                                               "default: no comparison)", minimum=0)
    auc_lower_bound: float | None = flag(help="a classifier with a smaller eval AUC is not blessed "
                                              "(default: no bound)", minimum=0, exclusive_minimum=True,
                                         maximum=1)
    accuracy_lower_bound: float | None = flag(help="a classifier with a smaller eval accuracy is not blessed "
                                                   "(default: no bound)", minimum=0, exclusive_minimum=True,
                                              maximum=1)
    max_auc_decrease: float | None = flag(help="a classifier's AUC may be at most this much lower than the "
                                               "model serving now's (0: no lower; default: no comparison)",
                                          minimum=0, maximum=1)
    slice_features: str | None = flag(help="comma-separated categorical features to slice by "
                                            "(default: all categorical; '' = none)")


@dataclass(frozen=True, kw_only=True)
class ObjectiveArgs(StepArgs):
    STEP: ClassVar[str] = "objective"
    HELP: ClassVar[str] = ("Evaluate a benchmark objective (branin, sleep) at one point, "
                           "as a tune worker would.")

    function: str | None = flag(help=f"one of {', '.join(BENCHMARK_FUNCTIONS)}", required=True,
                                choices=BENCHMARK_FUNCTIONS)
    hyperparameters: str | JSON = flag("{}", "JSON values, e.g. '{\"x1\": 3.14, \"x2\": 2.275}' "
                                             "(default: each minimum)")
    epochs: int = flag(1, "epochs to run (default 1)", minimum=1, maximum=MAX_EPOCHS)
    sleep_seconds: float | None = flag(help="seconds per epoch (default: 1 for sleep, 0 for branin)",
                                       minimum=0, maximum=MAX_SLEEP_SECONDS)


STEP_ARGS: dict[str, type[StepArgs]] = {
    cls.STEP: cls for cls in (PrepareArgs, OracleArgs, TuneArgs, TrainArgs, EvaluateArgs, ObjectiveArgs)
}
