"""Run parameters: the trigger form, `--conf` of `airflow dags trigger`, and their rules.

Each Param carries a JSON schema, so Airflow rejects a wrong type or an out-of-range
number at trigger time (form and CLI alike) and the form explains every field. A Param that
is a step's flag (`FLAGS`) is derived from that flag in `tune_contract.steps`: its type,
default, range, allowed values and description are the contract's, and where the form
deliberately says otherwise it is one entry of `FORM_OVERRIDES`, with why
(tests/airflow/test_params_from_contract.py). Rules that involve several fields cannot be
said in one Param's schema; `validate_conf` states them, `tune_serve.web.trigger_guard`
applies them when a run is triggered through the API (what the form posts), and the run's
first task again, before anything is written.
"""
from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Param

from tune_contract import data_roots as roots_rule
from tune_contract import early_stopping, enums, models, search_space
from tune_contract.errors import BadInput
from tune_contract.steps import (
    MAX_DEADLINE_SECONDS,
    EvaluateArgs,
    FlagSpec,
    OracleArgs,
    PrepareArgs,
    SearchArgs,
    StepArgs,
    TrainArgs,
    TuneArgs,
)
from tune_serve import config

# The form's enums are the contract's: the trainer accepts exactly what the form offers.
ALGORITHMS = list(enums.ALGORITHMS)
OBJECTIVES = list(enums.OBJECTIVES)
DIRECTIONS = list(enums.DIRECTIONS)
TASKS = list(enums.TASKS)
EARLY_STOPPING = list(enums.EARLY_STOPPING)
BENCHMARK_FUNCTIONS = list(enums.BENCHMARK_FUNCTIONS)
BUNDLED_DATASETS = list(enums.BUNDLED_DATASETS)
MAX_TUNING_DEADLINE_MINUTES = MAX_DEADLINE_SECONDS // 60  # the chief's --deadline-seconds, in minutes

SEARCH_PARAMETER_SCHEMA = search_space.PARAMETER_JSON_SCHEMA
# the models folder the local backend's trainer imports `model` from (/opt/models in the image)
MODELS_DIR = str(config.REPO_ROOT / "include" / models.FOLDER)
MODEL_PATTERN = models.PATTERN

# Each Param that is a step's flag, and that flag (a field several steps share names the one whose
# text the form shows; the test checks the others state the same default, range and values).
FLAGS: dict[str, tuple[type[StepArgs], str]] = {
    "source": (PrepareArgs, "source"),
    "label": (PrepareArgs, "label"),
    "task": (PrepareArgs, "task"),
    "eval_fraction": (PrepareArgs, "eval_fraction"),
    "sample_rows": (PrepareArgs, "sample_rows"),
    "model": (SearchArgs, "model"),
    "algorithm": (SearchArgs, "algorithm"),
    "early_stopping": (SearchArgs, "early_stopping"),
    "objective": (SearchArgs, "objective"),
    "direction": (SearchArgs, "direction"),
    "max_trials": (SearchArgs, "max_trials"),
    "executions_per_trial": (SearchArgs, "executions_per_trial"),
    "tuning_epochs": (SearchArgs, "epochs"),
    "tuner_lease_seconds": (OracleArgs, "lease_seconds"),
    "standby_tuners": (OracleArgs, "standby_tuners"),
    "objective_function": (SearchArgs, "objective_function"),
    "trial_sleep_seconds": (TuneArgs, "sleep_seconds"),
    "seed": (SearchArgs, "seed"),
    "training_epochs": (TrainArgs, "epochs"),
    "early_stopping_patience": (TrainArgs, "patience"),
    "mae_upper_bound": (EvaluateArgs, "mae_upper_bound"),
    "max_mae_increase": (EvaluateArgs, "max_mae_increase"),
    "auc_lower_bound": (EvaluateArgs, "auc_lower_bound"),
    "accuracy_lower_bound": (EvaluateArgs, "accuracy_lower_bound"),
    "max_auc_decrease": (EvaluateArgs, "max_auc_decrease"),
}

# Fields whose form value is `auto` where the flag is left out (the step, or the plan, decides).
AUTO_FIELDS = ("task", "objective", "direction")

# Where the form deliberately differs from its flag: each difference once, with why.
FORM_OVERRIDES: dict[str, dict[str, Any]] = {
    # the plan resolves `auto` itself (params.resolve_objective: the task's default, or the one every
    # task reports), and the form offers the metrics the contract knows; a hand-run step also takes a
    # user model's own metric
    "objective": {"enum": [enums.AUTO, *OBJECTIVES],
                  "description": "Metric the search optimises. auto: the task's default (val_mae for "
                                 "regression, val_auc for binary, val_accuracy for multiclass), or "
                                 f"{enums.TASK_NEUTRAL_OBJECTIVE} when the task is left to prepare."},
    # a sample in a run is for a quick run that still means something: at least 100 rows (the step
    # takes any sample with one train and one eval row)
    "sample_rows": {"minimum": 100},
    # a run's lease is whole seconds, at least 10: its tuners renew it every min(10 s, lease/4), so a
    # shorter one loses a healthy tuner its trial to one slow RPC; an integer field leaves a typed value
    # out of range as it is, for the trigger to refuse naming the field (see _int_bounds). The chief
    # takes any positive number of seconds (tests run it with 3)
    "tuner_lease_seconds": {"type": "integer", "minimum": 10},
    # the form offers a count; `all` (every tuner waits) is for a chief run by hand
    "standby_tuners": {"type": "integer"},
    # the form's field is the sleep benchmark's: its default is that function's own (the flag's
    # None means the function's: 1 s for sleep, 0 for branin)
    "trial_sleep_seconds": {"default": 1.0, "nullable": False},
    # empty: the step's default capped at the training epochs (patience()), so a short training
    # still stops early
    "early_stopping_patience": {"default": None, "nullable": True},
    # a run compares its candidates with the model serving now by default (0: no worse); a
    # hand-run evaluate without the flag compares nothing
    "max_mae_increase": {"default": 0.0},
    "max_auc_decrease": {"default": 0.0},
    # one run seed is prepare's, the search's and train's --seed
    "seed": {"description": "Seeds the split, the search and training."},
}

# A Param's words beside its flag's help: what the form's field means for a run.
FORM_NOTES: dict[str, str] = {
    "objective_function": "The run stops after the search.",
    "early_stopping_patience": f"Empty: {TrainArgs.flag_spec('patience').default}, "
                               "or the training epochs if fewer.",
    "max_mae_increase": "Every candidate not blessed gets its reasons in the run's summary.",
}


def flag_spec(name: str) -> FlagSpec:
    """The flag the form's field `name` is (`FLAGS`)."""
    step, field = FLAGS[name]
    return step.flag_spec(field)


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "." if text else text


def _int_bounds(low: int | None, high: int | None) -> dict[str, int]:
    """An integer range said with exclusive bounds: Airflow's trigger form hands
    `minimum`/`maximum` to its number input, which clamps a value outside them when it loses focus
    (0 typed in Max trials silently became 1). Exclusive bounds are the same rule for integers and
    leave the typed value as it is, for the trigger to refuse naming the field."""
    bounds = {}
    if low is not None:
        bounds["exclusiveMinimum"] = low - 1
    if high is not None:
        bounds["exclusiveMaximum"] = high + 1
    return bounds


def _range_words(low: int | None, high: int | None) -> str:
    if low is not None and high is not None:
        return f" ({low:,} to {high:,})"
    return f" (at least {low:,})" if low is not None else ""


def derived_schema(name: str) -> dict[str, Any]:
    """The form field `name`'s schema from its flag, with the form's overrides applied:
    type, default, range, enum and description (title and section are the form's own)."""
    spec, override = flag_spec(name), FORM_OVERRIDES.get(name, {})
    kind = override.get("type", {"integer or word": "integer"}.get(spec.kind, spec.kind))
    default = override.get("default", spec.default)
    nullable = override.get("nullable", spec.optional and name not in AUTO_FIELDS)
    schema: dict[str, Any] = {"default": default, "type": ["null", kind] if nullable else kind}
    description = override.get("description") or _sentence(spec.help)
    if name in AUTO_FIELDS and "description" not in override:
        description += f" {enums.AUTO}: that default."
    if name in FORM_NOTES:
        description += " " + FORM_NOTES[name]
    low = override.get("minimum", spec.minimum)
    high = spec.maximum
    if kind == "integer":
        schema["default"] = default if default is None else int(default)
        low, high = (None if low is None else int(low)), (None if high is None else int(high))
        schema.update(_int_bounds(low, high))
        description += _range_words(low, high)
    elif kind == "number":
        if low is not None:
            schema["exclusiveMinimum" if spec.exclusive_minimum else "minimum"] = low
        if high is not None:
            schema["exclusiveMaximum" if spec.exclusive_maximum else "maximum"] = high
    if "enum" in override:
        schema["enum"] = override["enum"]
    elif name in AUTO_FIELDS:
        schema["enum"] = [enums.AUTO, *spec.choices]
    elif spec.choices and kind == "string":
        schema["enum"] = [None, *spec.choices] if nullable else list(spec.choices)
    if name in AUTO_FIELDS:
        schema["default"] = enums.AUTO
    schema["description"] = description
    return schema


def _from_flag(name: str, title: str, section: str, **form: Any) -> Param:
    """The Param of the form field `name`, derived from its flag (`derived_schema`); `form`: what
    only the form says (presentation, a string's length and pattern)."""
    schema = derived_schema(name)
    return Param(schema.pop("default"), title=title, section=section, **schema, **form)


def _int(default: int | None, minimum: int, maximum: int, title: str, description: str, section: str,
         nullable: bool = False) -> Param:
    """An integer in [minimum, maximum] that is no step's flag (see _int_bounds)."""
    schema: dict[str, Any] = {"type": ["null", "integer"] if nullable else "integer",
                              **_int_bounds(minimum, maximum)}
    return Param(default, title=title, description=f"{description}{_range_words(minimum, maximum)}",
                 section=section, **schema)


def patience(conf: dict[str, Any]) -> int:
    """Early stopping patience: the run's, else the step's default capped at the training epochs."""
    value = conf.get("early_stopping_patience")
    return value if value is not None else min(flag_spec("early_stopping_patience").default,
                                               conf["training_epochs"])


def dag_params() -> dict[str, Param]:
    data, search, train, evaluation, serving = "Data", "Search", "Training", "Evaluation", "Serving"
    return {
        "source": _from_flag("source", "Data source", data, minLength=1),
        "label": _from_flag("label", "Label column", data),
        "task": _from_flag("task", "Task", data),
        "features": Param(None, type=["null", "array"], items={"type": "string"}, title="Feature columns",
                          section=data,
                          description="Columns to use as features. Empty means every other column."),
        "feature_spec": Param(None, type=["null", "object"], title="Feature spec", section=data,
                              description='Optional explicit spec, e.g. {"numeric": ["carat"], '
                                          '"categorical": {"cut": ["Fair", "Good"]}}; inferred when empty.'),
        "eval_fraction": _from_flag("eval_fraction", "Evaluation fraction", data),
        "sample_rows": _from_flag("sample_rows", "Sample rows", data),
        "model": _from_flag("model", "Model", search, minLength=3, maxLength=models.MAX_LENGTH,
                            pattern=MODEL_PATTERN),
        "algorithm": _from_flag("algorithm", "Search algorithm", search),
        "search_space": Param(None, type=["null", "array"], items=SEARCH_PARAMETER_SCHEMA, minItems=1,
                              title="Search space", section=search,
                              description='Katib-style list, e.g. [{"name": "units", "type": "int", '
                                          '"min": 16, "max": 128, "step": 16}, {"name": "learning_rate", '
                                          '"type": "float", "min": 1e-4, "max": 1e-2, "log": true}, '
                                          '{"name": "batch_size", "type": "choice", "values": [64, 128]}]. '
                                          'Empty means the default space (num_layers, units, dropout, '
                                          'learning_rate, batch_size). With another model, empty means the '
                                          'hyperparameters it declares, and a list narrows or fixes some of '
                                          'them (a choice of one value fixes it).'),
        "early_stopping": _from_flag("early_stopping", "Early stopping of trials", search),
        "warm_start": Param(True, type="boolean", title="Warm start from the previous run", section=search,
                            description="Seed the search with the completed trials of the previous "
                                        "successful run of this model, when its search space and feature "
                                        "spec are compatible (the plan and the summary say which run, "
                                        "or why not)."),
        "objective": _from_flag("objective", "Objective", search),
        "direction": _from_flag("direction", "Direction", search),
        "max_trials": _from_flag("max_trials", "Max trials", search),
        "num_tuners": _int(2, 1, 256, "Parallel tuners",
                           "Tuner pods (preemptible GPU) running trials at the same time.", search),
        "executions_per_trial": _from_flag("executions_per_trial", "Executions per trial", search),
        "tuning_epochs": _from_flag("tuning_epochs", "Epochs per trial", search),
        "tuner_lease_seconds": _from_flag("tuner_lease_seconds", "Tuner lease (s)", search),
        "standby_tuners": _from_flag("standby_tuners", "Standby tuners at the tail", search),
        "tuning_deadline_minutes": _int(360, 1, MAX_TUNING_DEADLINE_MINUTES, "Search deadline (min)",
                                        "After this the search stops and reports what completed.", search),
        "objective_function": _from_flag("objective_function", "Benchmark objective", search,
                                         # the form labels an option by this map, else shows "null"
                                         values_display={"null": "none: tune the Keras model",
                                                         **{f: f for f in BENCHMARK_FUNCTIONS}}),
        "trial_sleep_seconds": _from_flag("trial_sleep_seconds", "Sleep per epoch (s)", search),
        "seed": _from_flag("seed", "Seed", search),
        "top_n": _int(2, 1, 50, "Top N", "Best hyperparameter sets to train in full.", train),
        "training_epochs": _from_flag("training_epochs", "Training epochs", train),
        "early_stopping_patience": _from_flag("early_stopping_patience", "Early stopping patience", train),
        "mae_upper_bound": _from_flag("mae_upper_bound", "MAE upper bound", evaluation),
        "max_mae_increase": _from_flag("max_mae_increase", "Max MAE increase over serving", evaluation),
        "auc_lower_bound": _from_flag("auc_lower_bound", "AUC lower bound (classifier)", evaluation),
        "accuracy_lower_bound": _from_flag("accuracy_lower_bound", "Accuracy lower bound (classifier)",
                                           evaluation),
        "max_auc_decrease": _from_flag("max_auc_decrease", "Max AUC decrease from serving (classifier)",
                                       evaluation),
        "model_name": Param("diamonds", type="string", pattern="^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$",
                            title="Model name", section=serving,
                            description="Name served by TF Serving (lowercase letters, digits and dashes)."),
    }


class ConfError(ValueError):
    """A run's parameters break a rule; the message names the fields and what is allowed."""


def _search_space_problem(conf: dict[str, Any]) -> str | None:
    """The trainer's own rule for the space (tune_contract.search_space.check): well-formed,
    names the model (or the benchmark function) takes, discrete for grid. For a user model
    only the form: its names are checked where it can be imported, at prepare_data."""
    try:
        search_space.check(conf.get("search_space") or None, conf["algorithm"],
                           conf.get("objective_function"), field="search_space",
                           model=models.name_or_default(conf.get("model")))
    except BadInput as exc:
        return str(exc)
    return None


def resolve_task(conf: dict[str, Any]) -> str:
    """The task as known before `prepare`: the run's, or a bundled dataset's with its own label;
    `auto` when only the label column can tell (prepare infers it then)."""
    task = conf.get("task") or enums.AUTO
    source, label = conf.get("source"), conf.get("label")
    if (task == enums.AUTO and source in enums.BUNDLED_TASKS
            and label in (None, "", enums.BUNDLED_DATASETS[source])):
        return enums.BUNDLED_TASKS[source]
    return task


def resolve_objective(conf: dict[str, Any]) -> tuple[str, str]:
    """(objective, direction) with `auto` resolved: the task's default objective when the task is
    known (see resolve_task), else the one every task reports; the objective's direction."""
    objective = conf.get("objective") or enums.AUTO
    if objective == enums.AUTO:
        task = resolve_task(conf)
        objective = enums.DEFAULT_OBJECTIVES.get(task, enums.TASK_NEUTRAL_OBJECTIVE)
    direction = conf.get("direction") or enums.AUTO
    return objective, enums.direction_of(objective) if direction == enums.AUTO else direction


def _model_problem(conf: dict[str, Any]) -> str | None:
    """The `model` name's form (dotted identifiers, never a path) and, with the local backend
    (whose trainer imports from this repository's models folder), that its module is there.
    Never imported here: the Airflow side runs no user code; prepare_data checks the rest."""
    name = models.name_or_default(conf.get("model"))
    try:
        module, _ = models.parse(name, "model")
    except BadInput as exc:
        return str(exc)
    if (config.backend() == "local"
            and not any(os.path.isfile(f) for f in models.module_files(module, MODELS_DIR))):
        return f"model: {name}: no module {module} in the models folder {MODELS_DIR}"
    return None


def _source_problem(source: str) -> str | None:
    """A bundled dataset, or a file under the data roots (tune_contract.data_roots, the
    trainer's own rule): the answer to a path outside them names the setting, never whether
    the file exists. Under them (a folder the installer opened to every triggering user), a
    missing local file is said at once rather than at prepare_data."""
    if source in BUNDLED_DATASETS:
        return None
    roots = config.data_roots()
    if not roots_rule.under_roots(source, roots):
        return f"source: {roots_rule.refusal(roots, BUNDLED_DATASETS)}"
    if not source.startswith("gs://") and not os.path.exists(os.path.realpath(source.removeprefix("file://"))):
        return f"source: no file at {source!r} (under {roots_rule.ENV})"
    return None


def validate_conf(conf: dict[str, Any]) -> None:
    """Cross-field rules. Raises ConfError listing every broken rule, each naming its fields."""
    problems = []
    if conf["top_n"] > conf["max_trials"]:
        problems.append(f"top_n ({conf['top_n']}) must be at most max_trials ({conf['max_trials']})")
    if conf["num_tuners"] > conf["max_trials"]:
        problems.append(f"num_tuners ({conf['num_tuners']}) must be at most "
                        f"max_trials ({conf['max_trials']}): a tuner without a trial would idle")
    objective, direction, task = conf["objective"], conf.get("direction", enums.AUTO), resolve_task(conf)
    resolved = resolve_objective({**conf, "direction": enums.AUTO})[0]
    if direction != enums.AUTO and direction != enums.direction_of(resolved):
        shown = resolved if objective != enums.AUTO else f"{resolved} (objective auto)"
        problems.append(f"direction must be {enums.direction_of(resolved)!r} (or auto) "
                        f"for objective {shown}, got {direction!r}")
    if objective != enums.AUTO and task != enums.AUTO and enums.objective_problem(objective, task):
        problems.append(f"objective: {enums.objective_problem(objective, task)} (task {task!r})")
    # the bounds only: the allowed changes have defaults (0: no worse than serving) for either task
    classifier_gates = [name for name in ("auc_lower_bound", "accuracy_lower_bound")
                        if conf.get(name) is not None]
    if task == "regression" and classifier_gates:
        problems.append(f"{classifier_gates[0]}: a classifier's threshold, the task is regression; "
                        "use mae_upper_bound, max_mae_increase")
    if task in enums.CLASSIFICATION_TASKS and conf.get("mae_upper_bound") is not None:
        problems.append(f"mae_upper_bound: a regression's threshold, the task is {task}; "
                        "use auc_lower_bound, accuracy_lower_bound")
    if (conf.get("early_stopping_patience") or 1) > conf["training_epochs"]:
        problems.append(f"early_stopping_patience ({conf['early_stopping_patience']}) must be at most "
                        f"training_epochs ({conf['training_epochs']})")
    model_problem = _model_problem(conf)
    if model_problem:
        problems.append(model_problem)
    try:
        early_stopping.resolve(conf.get("early_stopping") or "auto", conf["algorithm"],
                               field="early_stopping")
    except BadInput as exc:
        problems.append(str(exc))
    space_problem = _search_space_problem(conf)
    if space_problem:
        problems.append(space_problem)
    source_problem = _source_problem(conf["source"])
    if source_problem:
        problems.append(source_problem)
    source = conf["source"]
    if source not in BUNDLED_DATASETS and not conf.get("label"):
        problems.append("label: required for a source other than the bundled datasets")
    feature_spec = conf.get("feature_spec")
    if feature_spec is not None and not isinstance(feature_spec, dict):
        # inline only: a run's conf names no spec file (the trainer would read a URI)
        problems.append("feature_spec: must be a mapping given inline, never a path or URI")
    elif feature_spec is not None:
        unknown = set(feature_spec) - {"label", "numeric", "categorical"}
        if unknown:
            problems.append(f"feature_spec: unknown keys {sorted(unknown)}; "
                            "allowed: label, numeric, categorical")
    if problems:
        raise ConfError("invalid run parameters:\n- " + "\n- ".join(problems))
