"""Every default and range is stated once, in `tune_contract.steps`: the trigger form's Params
that are a step's flag state the same default, range, allowed values and description, except
where `params.FORM_OVERRIDES` names a difference (issue 20). Compared field by field with the
flags themselves, not with the derivation params.py runs."""
from __future__ import annotations

import math

import pytest
from airflow.sdk import ParamsDict

from tune_contract import enums, models
from tune_contract.steps import OracleArgs, PrepareArgs, SearchArgs, TrainArgs, TuneArgs
from tune_serve import config
from tune_serve.workflow import params
from tune_serve.workflow import plan as planning

PARAMS = params.dag_params()
# the form's fields that are no flag of any step as they are (lists, a plan-level count, minutes, the
# served name): each must be said here, so that a new Param is either derived or named
NOT_A_FLAG = {"features", "feature_spec", "search_space", "warm_start", "num_tuners", "tuning_deadline_minutes",
              "top_n", "model_name"}


def _schema(name):
    param = PARAMS[name]
    return param.value, param.schema, param.description


def _bounds(schema):
    """(low, low exclusive, high, high exclusive) of a Param, integers as inclusive bounds."""
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    low = high = None
    low_x = high_x = False
    if "minimum" in schema:
        low = schema["minimum"]
    if "exclusiveMinimum" in schema:
        low, low_x = schema["exclusiveMinimum"], True
    if "maximum" in schema:
        high = schema["maximum"]
    if "exclusiveMaximum" in schema:
        high, high_x = schema["exclusiveMaximum"], True
    if "integer" in types:  # said with exclusive bounds (params._int_bounds): the same integers
        low, low_x = (low + 1 if low_x else low), False
        high, high_x = (high - 1 if high_x else high), False
    return low, low_x, high, high_x


def test_every_param_is_a_flag_or_named_as_none():
    assert set(PARAMS) == set(params.FLAGS) | NOT_A_FLAG
    assert not set(params.FLAGS) & NOT_A_FLAG
    assert set(params.FORM_OVERRIDES) <= set(params.FLAGS), "an override of a field that is no flag"
    assert set(params.FORM_NOTES) <= set(params.FLAGS)


@pytest.mark.parametrize("name", sorted(params.FLAGS))
def test_the_param_states_its_flags_default_unless_overridden(name):
    default, _, _ = _schema(name)
    spec, override = params.flag_spec(name), params.FORM_OVERRIDES.get(name, {})
    if "default" in override:
        expected = override["default"]
        assert expected != spec.default, f"{name}: an override that restates the flag's default"
    elif name in params.AUTO_FIELDS:
        expected = enums.AUTO  # the flag left out: the step decides
    else:
        expected = spec.default
    assert default == expected and type(default) in (type(expected), int, float), (name, default, expected)


@pytest.mark.parametrize("name", sorted(params.FLAGS))
def test_the_param_states_its_flags_range_unless_overridden(name):
    _, schema, _ = _schema(name)
    spec, override = params.flag_spec(name), params.FORM_OVERRIDES.get(name, {})
    low, low_x, high, high_x = _bounds(schema)
    expected_low = override.get("minimum", spec.minimum)
    if "minimum" in override:
        assert override["minimum"] != spec.minimum
    if spec.kind in ("integer", "integer or word") or override.get("type") == "integer":
        assert (low, high) == (expected_low, spec.maximum), name
    else:
        assert (low, low_x, high, high_x) == (expected_low, spec.exclusive_minimum and expected_low is not None,
                                              spec.maximum, spec.exclusive_maximum and spec.maximum is not None), name


@pytest.mark.parametrize("name", sorted(params.FLAGS))
def test_the_param_offers_its_flags_values(name):
    _, schema, _ = _schema(name)
    spec, override = params.flag_spec(name), params.FORM_OVERRIDES.get(name, {})
    if "enum" in override:
        assert override["enum"] == schema["enum"]
        return
    if not spec.choices or spec.kind == "integer or word":
        assert "enum" not in schema, name
        return
    extra = {enums.AUTO} if name in params.AUTO_FIELDS else ({None} if spec.optional else set())
    assert schema["enum"][:len(extra)] == list(extra) and schema["enum"][len(extra):] == list(spec.choices), name


@pytest.mark.parametrize("name", sorted(params.FLAGS))
def test_the_param_is_described_by_its_flags_help(name):
    _, _, description = _schema(name)
    spec, override = params.flag_spec(name), params.FORM_OVERRIDES.get(name, {})
    if "description" in override:
        assert description.startswith(override["description"])
        return
    help_text = spec.help.rstrip(".")
    assert description.lower().startswith(help_text.lower()), (name, description)


@pytest.mark.parametrize("name", sorted(params.FLAGS))
def test_the_param_has_the_flags_type_unless_overridden(name):
    _, schema, _ = _schema(name)
    spec, override = params.flag_spec(name), params.FORM_OVERRIDES.get(name, {})
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    kind = override.get("type", spec.kind)
    if "type" in override:
        assert override["type"] != spec.kind
    assert [t for t in types if t != "null"] == [kind], name


def test_a_run_seed_and_model_agree_across_the_steps_the_plan_gives_them_to():
    for field in ("seed", "model"):
        specs = {cls.flag_spec(field) for cls in (PrepareArgs, SearchArgs, TrainArgs)}
        assert len({(s.default, s.minimum, s.maximum) for s in specs}) == 1, field
    assert PrepareArgs.flag_spec("algorithm").default == SearchArgs.flag_spec("algorithm").default
    assert PrepareArgs.flag_spec("algorithm").choices == SearchArgs.flag_spec("algorithm").choices
    assert TrainArgs.flag_spec("objective").choices == tuple(enums.OBJECTIVES)


def test_the_patience_left_empty_is_the_steps_default_capped_at_the_training_epochs():
    assert params.patience({"early_stopping_patience": None, "training_epochs": 100}) == \
        TrainArgs.flag_spec("patience").default
    assert params.patience({"early_stopping_patience": None, "training_epochs": 2}) == 2


def test_the_deadline_maximum_is_the_chiefs():
    _, schema, _ = _schema("tuning_deadline_minutes")
    assert _bounds(schema)[2] * 60 == OracleArgs.flag_spec("deadline_seconds").maximum


def test_the_model_name_rule_and_folder_are_the_contracts():
    _, schema, _ = _schema("model")
    assert schema["pattern"] == models.PATTERN and schema["maxLength"] == models.MAX_LENGTH
    assert params.MODELS_DIR == str(config.REPO_ROOT / "include" / models.FOLDER)


def test_the_forms_defaults_make_command_lines_every_step_accepts():
    """The plan of a run triggered with every default passes each step's own from_args."""
    values = ParamsDict(params.dag_params())
    values.validate()
    conf = dict(values)
    plan = planning.build_plan(conf, "run-1")
    args = PrepareArgs.from_argv(plan["prepare"])
    assert args.seed == conf["seed"] and args.eval_fraction == conf["eval_fraction"]
    oracle = OracleArgs.from_argv(planning.oracle_arguments(plan["oracle"], port=8000, bind="127.0.0.1"))
    assert oracle.max_trials == conf["max_trials"] == SearchArgs.flag_spec("max_trials").default
    assert math.isclose(oracle.lease_seconds, conf["tuner_lease_seconds"])
    tune = TuneArgs.from_argv(planning.tuner_arguments(plan, "127.0.0.1:8000")[0])
    assert tune.seed == conf["seed"] and tune.epochs == conf["tuning_epochs"]
    train = TrainArgs.from_argv(planning.training_arguments(plan, [{"rank": 0, "trial_id": "1",
                                                                    "hyperparameters": {}}])[0])
    assert train.epochs == conf["training_epochs"]
