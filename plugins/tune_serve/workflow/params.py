"""Run parameters: the trigger form, `--conf` of `airflow dags trigger`, and their rules.

Each Param carries a JSON schema, so Airflow rejects a wrong type or an out-of-range
number at trigger time (form and CLI alike) and the form explains every field. Rules
that involve several fields cannot be said in one Param's schema; `validate_conf` states
them, `tune_serve.web.trigger_guard` applies them when a run is triggered through the API (what
the form posts), and the run's first task again, before anything is written.
"""
from __future__ import annotations

import os
from typing import Any

from airflow.sdk import Param

from tune_contract import data_roots as roots_rule
from tune_contract import early_stopping, enums, models, search_space
from tune_contract.errors import BadInput
from tune_serve import config

# The form's enums are the contract's: the trainer accepts exactly what the form offers.
ALGORITHMS = list(enums.ALGORITHMS)
OBJECTIVES = list(enums.OBJECTIVES)
DIRECTIONS = list(enums.DIRECTIONS)
TASKS = list(enums.TASKS)
EARLY_STOPPING = list(enums.EARLY_STOPPING)
BENCHMARK_FUNCTIONS = list(enums.BENCHMARK_FUNCTIONS)
BUNDLED_DATASETS = list(enums.BUNDLED_DATASETS)
MAX_TUNING_DEADLINE_MINUTES = 10_080  # a week

SEARCH_PARAMETER_SCHEMA = search_space.PARAMETER_JSON_SCHEMA
# the models folder the local backend's trainer imports `model` from (/opt/models in the image)
MODELS_DIR = str(config.REPO_ROOT / "include" / "models")
MODEL_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


def _int(default: int | None, minimum: int, maximum: int, title: str, description: str, section: str,
         nullable: bool = False) -> Param:
    """An integer in [minimum, maximum], said with exclusive bounds: Airflow's trigger form hands
    `minimum`/`maximum` to its number input, which clamps a value outside them when it loses focus
    (0 typed in Max trials silently became 1). Exclusive bounds are the same rule for integers and
    leave the typed value as it is, for the trigger to refuse naming the field."""
    return Param(default, type=["null", "integer"] if nullable else "integer", exclusiveMinimum=minimum - 1,
                 exclusiveMaximum=maximum + 1, title=title, description=f"{description} ({minimum:,} to {maximum:,})",
                 section=section)


DEFAULT_PATIENCE = 5


def patience(conf: dict[str, Any]) -> int:
    """Early stopping patience: the run's, else the default capped at the training epochs."""
    value = conf.get("early_stopping_patience")
    return value if value is not None else min(DEFAULT_PATIENCE, conf["training_epochs"])


def dag_params() -> dict[str, Param]:
    data, search, train, evaluation, serving = "Data", "Search", "Training", "Evaluation", "Serving"
    return {
        "source": Param("diamonds", type="string", minLength=1, title="Data source", section=data,
                        description="A CSV or Parquet URI (local path or gs://), or a bundled dataset: "
                                    "diamonds (53,940 diamonds, price regression), titanic (1,316 passengers, "
                                    "survived: binary), iris (150 flowers, species: multiclass)."),
        "label": Param(None, type=["null", "string"], title="Label column", section=data,
                       description="Column to predict. Empty means the bundled dataset's: price for diamonds, "
                                   "Species for iris, survived for titanic."),
        "task": Param(enums.AUTO, type="string", enum=[enums.AUTO, *TASKS], title="Task", section=data,
                      description="regression, binary or multiclass classification. auto: inferred by prepare "
                                  "from the label column (text or boolean, or integer with at most "
                                  f"{enums.MAX_INFERRED_CLASSES} distinct values: classification)."),
        "features": Param(None, type=["null", "array"], items={"type": "string"}, title="Feature columns",
                          section=data, description="Columns to use as features. Empty means every other column."),
        "feature_spec": Param(None, type=["null", "object"], title="Feature spec", section=data,
                              description='Optional explicit spec, e.g. {"numeric": ["carat"], '
                                          '"categorical": {"cut": ["Fair", "Good"]}}; inferred when empty.'),
        "eval_fraction": Param(0.2, type="number", exclusiveMinimum=0, exclusiveMaximum=1,
                               title="Evaluation fraction", section=data,
                               description="Share of rows held out for validation and evaluation (seeded split)."),
        "sample_rows": Param(None, type=["null", "integer"], exclusiveMinimum=99, title="Sample rows", section=data,
                             description="Use a seeded sample of this many rows, at least 100 (quick runs). "
                                         "Empty means all."),
        "model": Param(enums.DEFAULT_MODEL, type="string", minLength=3, maxLength=models.MAX_LENGTH,
                       pattern=MODEL_PATTERN, title="Model", section=search,
                       description="The Keras model to tune and train, package.module:callable, from the models "
                                   "folder (include/models; /opt/models in the trainer image): build(hp, spec, "
                                   "task) returning a keras.Model with one input per feature (docs/contracts.md, "
                                   "Model contract). Shipped: tune_serve_models.tabular:build (the built-in "
                                   "model), tune_serve_models.wide_and_deep:build (crossed categorical "
                                   "features, tuned deep side) and tune_serve_models.classifier:build (binary "
                                   "or multiclass). The hyperparameters it declares are the search space."),
        "algorithm": Param(enums.DEFAULT_ALGORITHM, type="string", enum=ALGORITHMS, title="Search algorithm",
                           section=search,
                           description="Search oracle: tpe (Optuna TPE after a Sobol start), gp (Gaussian-process "
                                       "expected improvement aware of the running trials, after a Sobol start), or "
                                       "Keras Tuner's random, bayesian (Gaussian process), hyperband, grid."),
        "search_space": Param(None, type=["null", "array"], items=SEARCH_PARAMETER_SCHEMA, minItems=1,
                              title="Search space", section=search,
                              description='Katib-style list, e.g. [{"name": "units", "type": "int", "min": 16, '
                                          '"max": 128, "step": 16}, {"name": "learning_rate", "type": "float", '
                                          '"min": 1e-4, "max": 1e-2, "log": true}, {"name": "batch_size", '
                                          '"type": "choice", "values": [64, 128]}]. Empty means the default '
                                          'space (num_layers, units, dropout, learning_rate, batch_size). With '
                                          'another model, empty means the hyperparameters it declares, and '
                                          'a list narrows or fixes some of them (a choice of one value fixes it).'),
        "early_stopping": Param("auto", type="string", enum=EARLY_STOPPING, title="Early stopping of trials",
                                section=search,
                                description="Stop trials that fall behind, across tuners, after any epoch: median "
                                            "(worse than the median of completed trials), asha (asynchronous "
                                            "successive halving: only the best third goes on at epochs 1, 3, 9...) "
                                            "or off. auto: median for bayesian (and tpe), off for random, grid and "
                                            "hyperband. A stopped trial is recorded as pruned, scored at its best "
                                            "epoch, and its tuner takes the next trial at once."),
        "warm_start": Param(True, type="boolean", title="Warm start from the previous run", section=search,
                            description="Seed the search with the completed trials of the previous successful run "
                                        "of this model, when its search space and feature spec are compatible "
                                        "(the plan and the summary say which run, or why not)."),
        "objective": Param(enums.AUTO, type="string", enum=[enums.AUTO, *OBJECTIVES], title="Objective",
                           section=search,
                           description="Metric the search optimises. auto: the task's default (val_mae for "
                                       "regression, val_auc for binary, val_accuracy for multiclass), or "
                                       f"{enums.TASK_NEUTRAL_OBJECTIVE} when the task is left to prepare."),
        "direction": Param(enums.AUTO, type="string", enum=[enums.AUTO, *DIRECTIONS], title="Direction",
                           section=search,
                           description="Whether the objective is minimised or maximised. auto: the objective's "
                                       "(errors and losses min; AUC, accuracy, precision, recall max)."),
        "max_trials": _int(12, 1, 10_000, "Max trials", "Hyperparameter sets to try in all.", search),
        "num_tuners": _int(2, 1, 256, "Parallel tuners",
                           "Tuner pods (preemptible GPU) running trials at the same time.", search),
        "executions_per_trial": _int(1, 1, 20, "Executions per trial",
                                     "Models trained per hyperparameter set (averages out noise).", search),
        "tuning_epochs": _int(3, 1, 10_000, "Epochs per trial", "Training epochs of each trial.", search),
        "tuner_lease_seconds": _int(600, 10, 86_400, "Tuner lease (s)",
                                    "A tuner silent this long loses its trial to another tuner.", search),
        "standby_tuners": _int(1, 0, 256, "Standby tuners at the tail",
                               "Once no trial is left to hand out, this many idle tuners keep waiting to take "
                               "over a trial whose tuner is lost; the other idle tuners stop and free their "
                               "GPUs. 0: none wait (a trial lost at the tail is not finished).", search),
        "tuning_deadline_minutes": _int(360, 1, MAX_TUNING_DEADLINE_MINUTES, "Search deadline (min)",
                                        "After this the search stops and reports what completed.", search),
        "objective_function": Param(None, type=["null", "string"], enum=[None, *BENCHMARK_FUNCTIONS],
                                    # the form labels an option by this map, else shows "null"
                                    values_display={"null": "none: tune the Keras model",
                                                    **{f: f for f in BENCHMARK_FUNCTIONS}},
                                    title="Benchmark objective", section=search,
                                    description="For benchmarks: tune a plain function instead of the Keras model "
                                                "(sleep: fixed-length trials; branin: the Branin function). "
                                                "The run stops after the search."),
        "trial_sleep_seconds": Param(1.0, type="number", minimum=0, maximum=3600, title="Sleep per epoch (s)",
                                     section=search, description="Length of an epoch of the sleep objective."),
        "seed": _int(42, 0, 2**31 - 1, "Seed", "Seeds the split, the search and training.", search),
        "top_n": _int(2, 1, 50, "Top N", "Best hyperparameter sets to train in full.", train),
        "training_epochs": _int(20, 1, 100_000, "Training epochs", "Epochs of each full training.", train),
        "early_stopping_patience": _int(None, 1, 10_000, "Early stopping patience",
                                        f"Epochs without improvement of the objective before stopping. Empty: "
                                        f"{DEFAULT_PATIENCE}, or the training epochs if fewer", train, nullable=True),
        "mae_upper_bound": Param(None, type=["null", "number"], exclusiveMinimum=0, title="MAE upper bound",
                                 section=evaluation,
                                 description="A candidate with a larger eval MAE is not blessed. Empty: no bound. "
                                             "With no bound and no model serving yet, the first model is blessed "
                                             "unless its metrics are not finite (NaN or infinite)."),
        "max_mae_increase": Param(0.0, type=["null", "number"], minimum=0, title="Max MAE increase over serving",
                                  section=evaluation,
                                  description="A candidate may be at most this much worse (absolute MAE) than the "
                                              "model serving now (0: no worse). Empty: no comparison. Every "
                                              "candidate not blessed gets its reasons in the run's summary."),
        "auc_lower_bound": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=1,
                                 title="AUC lower bound (classifier)", section=evaluation,
                                 description="A classifier with a smaller eval AUC is not blessed. Empty: no bound."),
        "accuracy_lower_bound": Param(None, type=["null", "number"], exclusiveMinimum=0, maximum=1,
                                      title="Accuracy lower bound (classifier)", section=evaluation,
                                      description="A classifier with a smaller eval accuracy is not blessed. "
                                                  "Empty: no bound."),
        "max_auc_decrease": Param(0.0, type=["null", "number"], minimum=0, maximum=1,
                                  title="Max AUC decrease from serving (classifier)", section=evaluation,
                                  description="A classifier's AUC may be at most this much lower than the model "
                                              "serving now's (0: no lower). Empty: no comparison."),
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
        search_space.check(conf.get("search_space") or None, conf["algorithm"], conf.get("objective_function"),
                           field="search_space", model=conf.get("model") or enums.DEFAULT_MODEL)
    except BadInput as exc:
        return str(exc)
    return None


def resolve_task(conf: dict[str, Any]) -> str:
    """The task as known before `prepare`: the run's, or a bundled dataset's with its own label;
    `auto` when only the label column can tell (prepare infers it then)."""
    task = conf.get("task") or enums.AUTO
    source, label = conf.get("source"), conf.get("label")
    if task == enums.AUTO and source in enums.BUNDLED_TASKS and label in (None, "", enums.BUNDLED_DATASETS[source]):
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
    name = conf.get("model") or enums.DEFAULT_MODEL
    try:
        module, _ = models.parse(name, "model")
    except BadInput as exc:
        return str(exc)
    if config.backend() == "local" and not any(os.path.isfile(f) for f in models.module_files(module, MODELS_DIR)):
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
        problems.append(f"num_tuners ({conf['num_tuners']}) must be at most max_trials ({conf['max_trials']}): "
                        "a tuner without a trial would idle")
    objective, direction, task = conf["objective"], conf.get("direction", enums.AUTO), resolve_task(conf)
    resolved = resolve_objective({**conf, "direction": enums.AUTO})[0]
    if direction != enums.AUTO and direction != enums.direction_of(resolved):
        shown = resolved if objective != enums.AUTO else f"{resolved} (objective auto)"
        problems.append(f"direction must be {enums.direction_of(resolved)!r} (or auto) for objective {shown}, "
                        f"got {direction!r}")
    if objective != enums.AUTO and task != enums.AUTO and enums.objective_problem(objective, task):
        problems.append(f"objective: {enums.objective_problem(objective, task)} (task {task!r})")
    # the bounds only: the allowed changes have defaults (0: no worse than serving) for either task
    classifier_gates = [name for name in ("auc_lower_bound", "accuracy_lower_bound") if conf.get(name) is not None]
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
        early_stopping.resolve(conf.get("early_stopping") or "auto", conf["algorithm"], field="early_stopping")
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
            problems.append(f"feature_spec: unknown keys {sorted(unknown)}; allowed: label, numeric, categorical")
    if problems:
        raise ConfError("invalid run parameters:\n- " + "\n- ".join(problems))
