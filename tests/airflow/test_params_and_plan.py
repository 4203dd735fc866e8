import json

import pytest
from airflow.sdk import ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from tune_contract.steps import EvaluateArgs, OracleArgs, PrepareArgs, TrainArgs, TuneArgs
from tune_serve.workflow import plan as planning
from tune_serve.workflow.params import ConfError, dag_params, validate_conf


def resolved(**conf):
    """The params a run would see: defaults merged with conf, validated by each Param's schema."""
    params = ParamsDict(dag_params())
    for key, value in conf.items():
        params[key] = value
    params.validate()
    return dict(params)


def test_defaults_are_valid_and_pass_the_cross_field_rules():
    validate_conf(resolved())


@pytest.mark.parametrize("field,value", [
    ("max_trials", 0), ("max_trials", "ten"), ("num_tuners", 0), ("top_n", -1), ("algorithm", "annealing"),
    ("direction", "down"), ("objective", "f1_score"), ("task", "ranking"), ("eval_fraction", 1.5), ("eval_fraction", 0),
    ("mae_upper_bound", -1), ("mae_upper_bound", 0), ("max_mae_increase", -0.1), ("model_name", "Bad Name"),
    ("search_space", [{"name": "units", "type": "integer", "min": 1, "max": 2}]),
    ("search_space", [{"name": "units", "type": "int", "low": 1}]),
    ("search_space", []), ("sample_rows", 5), ("features", "carat"),
])
def test_schema_rejects_bad_values_naming_the_field(field, value):
    with pytest.raises(ParamValidationError, match=field):
        resolved(**{field: value})


@pytest.mark.parametrize("conf,message", [
    ({"top_n": 5, "max_trials": 3}, r"top_n \(5\) must be at most max_trials \(3\)"),
    ({"num_tuners": 4, "max_trials": 3}, r"num_tuners \(4\) must be at most max_trials \(3\)"),
    ({"direction": "max"}, "direction must be 'min'"),
    ({"early_stopping_patience": 9, "training_epochs": 3}, "early_stopping_patience"),
    ({"search_space": [{"name": "lr", "type": "float", "min": 1, "max": 0.1}]}, r"search_space\.lr\.min: must be < max, got min=1.0 max=0.1"),
    ({"search_space": [{"name": "lr", "type": "float", "min": 0, "max": 1, "log": True}]}, r"search_space\.lr\.min: must be > 0 with log: true"),
    ({"search_space": [{"name": "u", "type": "choice"}]}, r"search_space\.u\.values: must be a non-empty list"),
    ({"search_space": [{"name": "u", "type": "int", "min": 1, "max": 3}, {"name": "u", "type": "choice",
                                                                        "values": [1]}]}, r"search_space\.u: defined twice"),
    ({"algorithm": "grid", "search_space": [{"name": "dropout", "type": "float", "min": 0.1, "max": 0.5}]},
     r"search_space\.dropout: the grid algorithm needs every parameter discrete"),
    ({"source": "/no/such/file.csv", "label": "y"}, "source: not under TUNE_SERVE_DATA_ROOTS"),
    ({"source": "gs://bucket/data.csv"}, "label: required"),
    ({"feature_spec": {"numerics": ["carat"]}}, "feature_spec: unknown keys"),
])
def test_cross_field_rules_name_the_fields(conf, message):
    with pytest.raises(ConfError, match=message):
        validate_conf(resolved(**conf))


def test_plan_builds_the_flags_of_every_step(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(tmp_path))
    space = [{"name": "units", "type": "int", "min": 8, "max": 32, "step": 8}]
    plan = planning.build_plan(resolved(search_space=space, max_trials=4, num_tuners=2, top_n=2,
                                        mae_upper_bound=1.5, sample_rows=500), "run-1")
    assert plan["run_root"] == f"{tmp_path}/runs/run-1"
    assert "--sample-rows=500" in plan["prepare"]
    oracle = OracleArgs.from_argv(planning.oracle_arguments(plan["oracle"], port=9999, bind="127.0.0.1"))
    tune, _ = (TuneArgs.from_argv(a) for a in planning.tuner_arguments(plan, "127.0.0.1:9999"))
    assert json.loads(tune.search_space) == json.loads(oracle.search_space) == space
    assert "lease_seconds" in plan["oracle"] and "lease_seconds" not in plan["tune"]
    assert 1.0 <= tune.heartbeat_seconds <= 10.0 and tune.heartbeat_seconds <= oracle.lease_seconds / 4
    assert oracle.standby_tuners == 1  # the form's default
    assert (oracle.port, oracle.bind) == (9999, "127.0.0.1")

    tuners = planning.tuner_arguments(plan, "127.0.0.1:9999")
    assert [TuneArgs.from_argv(a).tuner_id for a in tuners] == ["tuner-0", "tuner-1"]
    assert planning.tuner_arguments(plan, "127.0.0.1:9999") == tuners  # a retry gets the same id

    top = [{"rank": 0, "trial_id": "03", "hyperparameters": {"units": 16}}]
    (train,) = planning.training_arguments(plan, top)
    assert json.loads(TrainArgs.from_argv(train).hyperparameters) == {"units": 16}
    (evaluate,) = planning.evaluation_arguments(plan, [{"rank": 0, "model_path": "/m"}], "/serving/1")
    assert EvaluateArgs.from_argv(evaluate).baseline_model_path == "/serving/1"
    assert EvaluateArgs.from_argv(evaluate).max_mae_increase == 0.0
    (no_baseline,) = planning.evaluation_arguments(plan, [{"rank": 0, "model_path": "/m"}], None)
    assert not any(a.startswith("--baseline-model-path") for a in no_baseline)


# -- the search-space rule is the trainer's own (tune_contract.search_space), not a copy ---------


def test_grid_with_a_log_int_without_step_is_rejected_like_the_chief_does():
    """grid enumerates the space; an int on a log scale without a step cannot be enumerated.
    validate_params passed it and the chief failed after prepare_data had written data."""
    space = [{"name": "units", "type": "int", "min": 8, "max": 64, "log": True}]
    with pytest.raises(ConfError, match=r"search_space\.units: the grid algorithm needs every parameter discrete"):
        validate_conf(resolved(algorithm="grid", search_space=space))


def test_a_misspelt_parameter_name_is_rejected_before_anything_is_written():
    """A typo was tuned and ignored by the model; the chief refused it only after prepare_data."""
    space = [{"name": "unit", "type": "int", "min": 8, "max": 64}]
    with pytest.raises(ConfError, match=r"search_space\.unit: not a hyperparameter of the tabular model; "
                                        r"allowed: num_layers, units"):
        validate_conf(resolved(search_space=space))


def test_a_benchmark_space_names_the_function_parameters():
    validate_conf(resolved(objective_function="branin", search_space=[
        {"name": "x1", "type": "float", "min": -5, "max": 10}, {"name": "x2", "type": "float", "min": 0, "max": 15}]))
    with pytest.raises(ConfError, match=r"search_space\.units: not a hyperparameter of the branin function"):
        validate_conf(resolved(objective_function="branin", search_space=[
            {"name": "units", "type": "int", "min": 8, "max": 64}]))


# -- every flag a backend passes is the trainer's, and comes back the same ------------------


def _all_command_lines(plan) -> dict[str, list[list[str]]]:
    top = [{"rank": 0, "trial_id": "03", "hyperparameters": {"units": 16, "dropout": 0.2}},
           {"rank": 1, "trial_id": "07", "hyperparameters": {"units": 32}}]
    return {
        "prepare": [plan["prepare"]],
        "oracle": [planning.oracle_arguments(plan["oracle"], port=8000, bind="0.0.0.0",
                                             xcom_file=f"{plan['run_root']}/tuning/oracle_result.json")],
        "tune": planning.tuner_arguments(plan, "oracle.ns.svc.cluster.local:8000"),
        "train": planning.training_arguments(plan, top),
        "evaluate": planning.evaluation_arguments(plan, [{"rank": 0, "model_path": "/m/0"}], "/serving/3"),
    }


@pytest.mark.parametrize("conf", [
    {},
    {"search_space": [{"name": "units", "type": "int", "min": 8, "max": 32, "step": 8}], "sample_rows": 500,
     "features": ["carat", "cut"], "feature_spec": {"numeric": ["carat"]}, "mae_upper_bound": 900.0},
    {"objective_function": "sleep", "trial_sleep_seconds": 0.5, "max_mae_increase": None},
])
def test_every_flag_a_backend_passes_round_trips(monkeypatch, tmp_path, conf):
    from tune_contract.steps import STEP_ARGS

    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(tmp_path))
    plan = planning.build_plan(resolved(**conf), "run-1")
    for step, command_lines in _all_command_lines(plan).items():
        for argv in command_lines:
            assert all(a.startswith("--") and "=" in a for a in argv), argv  # one --flag=value each
            parsed = STEP_ARGS[step].from_argv(argv)
            assert parsed.to_argv() == argv
            assert parsed.run_root == plan["run_root"]


def test_a_value_that_begins_with_a_dash_is_never_read_as_a_flag(monkeypatch, tmp_path):
    csv = tmp_path / "-data.csv"
    csv.write_text("x,-price\n1,2\n")
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    plan = planning.build_plan(resolved(source="-data.csv", label="-price"), "run-1")
    prepare = PrepareArgs.from_argv(plan["prepare"])
    assert (prepare.source, prepare.label) == ("-data.csv", "-price")


# The trigger form (issue 15): what the user sees and types must not trap or be changed silently.

def test_defaults_pass_the_rules_with_few_training_epochs():
    validate_conf(resolved(training_epochs=3))  # the default patience used to be 5 > 3


def test_the_form_never_clamps_a_number_silently():
    """Airflow's form gives a number field the schema's `minimum`/`maximum` as the input's bounds,
    and the input clamps to them when it loses focus (0 in Max trials became 1). Integer ranges
    are exclusive bounds instead: the form leaves the value alone, and the trigger refuses it."""
    for name, param in dag_params().items():
        if param.schema.get("type") in ("integer", ["null", "integer"]):
            assert not {"minimum", "maximum"} & param.schema.keys(), name
    with pytest.raises(ParamValidationError, match="max_trials"):
        resolved(max_trials=0)
    with pytest.raises(ParamValidationError, match="num_tuners"):
        resolved(num_tuners=257)
    assert resolved(max_trials=1, num_tuners=1, top_n=1)["max_trials"] == 1


def test_the_empty_choice_of_a_dropdown_has_a_label_and_descriptions_are_plain_text():
    params = dag_params()
    assert params["objective_function"].schema["values_display"]["null"].startswith("none")
    assert [n for n, p in params.items() if "`" in (p.description or "")] == []


def test_a_space_beyond_what_the_model_takes_is_rejected_before_anything_is_written():
    """The model's value limits are the contract's: validate_params refuses what the chief would."""
    for space, reason in (([{"name": "units", "type": "int", "min": 16, "max": 100_000}], "an integer in \\[1, 4096\\]"),
                          ([{"name": "num_layers", "type": "choice", "values": [1.5, 2]}], "an integer in \\[1, 16\\]")):
        with pytest.raises(ConfError, match=rf"search_space\.{space[0]['name']}: .*{reason}"):
            validate_conf(resolved(search_space=space))


# -- classification: task, objective and direction auto, thresholds per task ------------------------

@pytest.mark.parametrize("conf,message", [
    ({"objective": "val_auc", "direction": "min"}, r"direction must be 'max' \(or auto\) for objective val_auc"),
    ({"objective": "val_mae", "direction": "max"}, r"direction must be 'min' \(or auto\) for objective val_mae"),
    ({"task": "binary", "objective": "val_mae"}, r"objective: 'val_mae' is not reported for a binary task; allowed: val_auc"),
    ({"task": "regression", "objective": "val_auc"}, r"objective: 'val_auc' is not reported for a regression task; "
                                                     r"allowed: val_mae, val_loss, mae, loss"),
    # a bundled dataset's task is known before prepare
    ({"source": "iris", "objective": "val_mae"}, r"objective: 'val_mae' is not reported for a multiclass task"),
    ({"task": "regression", "auc_lower_bound": 0.8}, r"auc_lower_bound: a classifier's threshold"),
    ({"source": "titanic", "mae_upper_bound": 10.0}, r"mae_upper_bound: a regression's threshold, the task is binary"),
])
def test_classification_rules_name_the_fields(conf, message):
    with pytest.raises(ConfError, match=message):
        validate_conf(resolved(**conf))


@pytest.mark.parametrize("conf,objective,direction,task", [
    ({}, "val_mae", "min", "regression"),                                  # diamonds: a regression
    ({"source": "titanic"}, "val_auc", "max", "binary"),
    ({"source": "iris"}, "val_accuracy", "max", "multiclass"),
    ({"task": "binary", "source": "gs://bucket/churn.csv", "label": "churned"}, "val_auc", "max", "binary"),
    # only prepare can tell: the objective every task reports
    ({"source": "gs://bucket/churn.csv", "label": "churned"}, "val_loss", "min", "auto (inferred by prepare)"),
    ({"source": "iris", "objective": "val_loss"}, "val_loss", "min", "multiclass"),
])
def test_plan_resolves_task_objective_and_direction(conf, objective, direction, task):
    plan = planning.build_plan(resolved(**conf), "manual__1")
    assert plan["objective"] == {"name": objective, "direction": direction}
    assert plan["task"] == task
    assert plan["train"]["objective"] == objective and plan["train"]["direction"] == direction
    assert f"--objective={objective}" in plan["prepare"]
    assert any(a.startswith("--task=") for a in plan["prepare"]) == (not task.startswith("auto"))


# -- the model (the model contract): its name is checked here, the model itself at prepare_data ----

WIDE_AND_DEEP = "tune_serve_models.wide_and_deep:build"


def test_the_model_reaches_prepare_the_chief_the_tuners_and_training(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", str(tmp_path))
    space = [{"name": "bottleneck", "type": "choice", "values": [True]}]  # a name only the model declares
    conf = resolved(model=WIDE_AND_DEEP, search_space=space, algorithm="random")
    validate_conf(conf)  # the names are the model's business, checked where it is imported
    plan = planning.build_plan(conf, "run-1")
    prepare = PrepareArgs.from_argv(plan["prepare"])
    assert (prepare.model, json.loads(prepare.search_space), prepare.algorithm) == (WIDE_AND_DEEP, space, "random")
    oracle = OracleArgs.from_argv(planning.oracle_arguments(plan["oracle"], port=9999, bind="127.0.0.1"))
    tune = TuneArgs.from_argv(planning.tuner_arguments(plan, "127.0.0.1:9999")[0])
    (train,) = planning.training_arguments(plan, [{"rank": 0, "trial_id": "1", "hyperparameters": {"bottleneck": True}}])
    assert oracle.model == tune.model == TrainArgs.from_argv(train).model == WIDE_AND_DEEP


def test_the_default_model_is_the_built_in_one():
    from tune_contract.enums import DEFAULT_MODEL

    plan = planning.build_plan(resolved(), "run-1")
    assert resolved()["model"] == DEFAULT_MODEL == "tune_serve_models.tabular:build"
    assert PrepareArgs.from_argv(plan["prepare"]).model == TrainArgs(**plan["train"]).model == DEFAULT_MODEL


@pytest.mark.parametrize("model", ["../models/x.py:build", "/etc/passwd", "my models:build", "a.b", "a:b:c"])
def test_a_model_that_is_not_a_dotted_name_is_refused_by_the_form(model):
    with pytest.raises(ParamValidationError, match="model"):
        resolved(model=model)


@pytest.mark.parametrize("model, message", [
    ("tune_serve_models.class:build", r"model: 'tune_serve_models.class:build': 'class' is a Python keyword"),
    ("tune_serve_models.nowhere:build", r"model: tune_serve_models.nowhere:build: no module tune_serve_models.nowhere "
                                        r"in the models folder .*include/models"),
    ("json:loads", r"model: json:loads: no module json in the models folder"),  # never imported here
])
def test_a_model_the_local_trainer_cannot_find_is_refused_before_anything_runs(model, message, monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_BACKEND", "local")
    with pytest.raises(ConfError, match=message):
        validate_conf(resolved(model=model))


def test_a_space_for_the_built_in_model_still_names_its_parameters():
    with pytest.raises(ConfError, match=r"search_space\.bottleneck: not a hyperparameter of the tabular model"):
        validate_conf(resolved(search_space=[{"name": "bottleneck", "type": "choice", "values": [True]}]))
