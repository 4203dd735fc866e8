import json

import pytest
from airflow.sdk import ParamsDict
from airflow.sdk.exceptions import ParamValidationError

from tune_serve import plan as planning
from tune_serve.params import ConfError, dag_params, validate_conf


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
    ("direction", "down"), ("objective", "accuracy"), ("eval_fraction", 1.5), ("eval_fraction", 0),
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
    ({"search_space": [{"name": "lr", "type": "float", "min": 1, "max": 0.1}]}, r"min \(1\) must be less than max"),
    ({"search_space": [{"name": "lr", "type": "float", "min": 0, "max": 1, "log": True}]}, "log scale needs min > 0"),
    ({"search_space": [{"name": "u", "type": "choice"}]}, "a choice needs 'values'"),
    ({"search_space": [{"name": "u", "type": "int", "min": 1, "max": 3}, {"name": "u", "type": "choice",
                                                                        "values": [1]}]}, "duplicate name"),
    ({"algorithm": "grid", "search_space": [{"name": "lr", "type": "float", "min": 0.1, "max": 1}]},
     "algorithm 'grid' needs a discrete search space"),
    ({"source": "/no/such/file.csv", "label": "y"}, "source: no file at"),
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
    assert plan["prepare"][plan["prepare"].index("--sample-rows") + 1] == "500"
    assert json.loads(plan["tune"][plan["tune"].index("--search-space") + 1]) == space
    assert "--lease-seconds" in plan["oracle"] and "--lease-seconds" not in plan["tune"]
    heartbeat = float(plan["tune"][plan["tune"].index("--heartbeat-seconds") + 1])
    lease = float(plan["oracle"][plan["oracle"].index("--lease-seconds") + 1])
    assert 1.0 <= heartbeat <= 10.0 and heartbeat <= lease / 4
    assert plan["oracle"][plan["oracle"].index("--standby-tuners") + 1] == "1"  # the form's default
    assert plan["evaluate"][-2:] == ["--max-mae-increase", "0.0"]

    tuners = planning.tuner_arguments(plan, "127.0.0.1:9999")
    assert [a[a.index("--tuner-id") + 1] for a in tuners] == ["tuner-0", "tuner-1"]
    assert planning.tuner_arguments(plan, "127.0.0.1:9999") == tuners  # a retry gets the same id

    top = [{"rank": 0, "trial_id": "03", "hyperparameters": {"units": 16}}]
    (train,) = planning.training_arguments(plan, top)
    assert json.loads(train[train.index("--hyperparameters") + 1]) == {"units": 16}
    (evaluate,) = planning.evaluation_arguments(plan, [{"rank": 0, "model_path": "/m"}], "/serving/1")
    assert evaluate[-2:] == ["--baseline-model-path", "/serving/1"]
    (no_baseline,) = planning.evaluation_arguments(plan, [{"rank": 0, "model_path": "/m"}], None)
    assert "--baseline-model-path" not in no_baseline


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
