"""The model contract (trainer.user_model): a user's `build(hp, spec, task)` from the models folder.

Bad models fail at `prepare` (the first step, a CPU pod) with one line naming the callable and
nothing written; the space is what the model declares (conditional hyperparameters included),
narrowed by --search-space; a conditional hyperparameter reaches the trained SavedModel; and
training runs under MirroredStrategy with 2 replicas (two logical CPUs, in a subprocess).
"""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import WIDE_AND_DEEP, WIDE_AND_DEEP_HYPERPARAMETERS, cli_env, run_step

GOOD_INPUTS = '''
import keras
from trainer import heads

def inputs_of(spec, float_categorical=False):
    out = {}
    for name in spec.feature_names:
        key = spec.keras_key(name)
        dtype = "string" if spec.is_categorical(name) and not float_categorical else "float32"
        out[key] = keras.Input(shape=(1,), name=key, dtype=dtype)
    return out

def numeric_model(spec, task, inputs):
    x = keras.layers.Concatenate()([inputs[spec.keras_key(n)] for n in spec.numeric])
    return keras.Model(inputs, heads.output(x, spec, task))
'''

BAD_MODELS = {
    "import_fails": ("import a_module_that_is_nowhere\n", "cannot import"),
    "not_callable": ("build = 3\n", "is not callable"),
    "wrong_signature": ("def build(hp):\n    return None\n", "must take (hp, spec, task); it is build(hp)"),
    "returns_no_model": ("def build(hp, spec, task):\n    hp.Int('units', 1, 4)\n    return 'a model'\n",
                         "must return a keras.Model, returned str"),
    "raises": ("def build(hp, spec, task):\n    hp.Int('units', 1, 4)\n    raise RuntimeError('no luck\\nsecond line')\n",
               "failed to build: RuntimeError: no luck"),
    "declares_nothing": (GOOD_INPUTS + "def build(hp, spec, task):\n    return numeric_model(spec, task, inputs_of(spec))\n",
                         "declares no hyperparameter"),
    "inputs_differ": (GOOD_INPUTS + textwrap.dedent('''
        def build(hp, spec, task):
            hp.Int('units', 1, 4)
            inputs = {"carat": keras.Input(shape=(1,), name="carat"), "colour": keras.Input(shape=(1,), name="colour")}
            return keras.Model(inputs, heads.output(keras.layers.Concatenate()(list(inputs.values())), spec, task))
        '''), "inputs must be one keras.Input per feature named"),
    "wrong_dtype": (GOOD_INPUTS + textwrap.dedent('''
        def build(hp, spec, task):
            hp.Int('units', 1, 4)
            inputs = inputs_of(spec, float_categorical=True)
            x = keras.layers.Concatenate()(list(inputs.values()))
            return keras.Model(inputs, heads.output(x, spec, task))
        '''), "its model fails on the prepared features"),
}


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    """A models folder of its own, on the path, as include/models is (package names unique per test)."""
    from trainer import user_model

    folder = tmp_path / "models"
    folder.mkdir()
    monkeypatch.setattr(user_model, "MODELS_DIR", folder)
    monkeypatch.syspath_prepend(str(folder))
    return folder


def _package(folder: Path, name: str, source: str) -> str:
    (folder / name).mkdir()
    (folder / name / "__init__.py").write_text("")
    (folder / name / "model.py").write_text(source)
    return f"{name}.model:build"


def _prepare_fails(run_root: Path, capsys, *flags: str) -> str:
    code, result = run_step("prepare", run_root, "--sample-rows", "200", *flags)
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and result is None, lines[-5:]
    assert not (run_root / "data").exists(), "a bad model must fail before anything is written"
    return lines[-1]


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_a_bad_model_fails_at_prepare_naming_the_callable(case, models_dir, tmp_path, capsys):
    source, reason = BAD_MODELS[case]
    name = _package(models_dir, f"bad_{case}", source)
    message = _prepare_fails(tmp_path / "runs" / case, capsys, "--model", name)
    assert message.startswith(f"error: --model: {name}"), message
    assert reason in message, message


@pytest.mark.parametrize("name, reason", [
    ("json:loads", "no module json in the models folder"),  # installed, but not a model: never imported
    ("../etc/passwd:build", "is not package.module:callable"),
    ("/tmp/x.py:build", "is not package.module:callable"),
    ("tune_serve_models.tabular", "is not package.module:callable"),
    ("tune_serve_models.class:build", "'class' is a Python keyword"),
    ("tune_serve_models.no_such_module:build", "no module tune_serve_models.no_such_module in the models folder"),
    ("tune_serve_models.tabular:no_such_builder", "tune_serve_models.tabular has no attribute no_such_builder"),
])
def test_a_model_name_outside_the_models_folder_is_refused_before_any_import(name, reason, tmp_path, capsys):
    message = _prepare_fails(tmp_path / "runs" / "r", capsys, "--model", name)
    assert message.startswith("error: --model: ") and reason in message, message


def test_a_space_naming_what_the_model_does_not_declare_fails_at_prepare(tmp_path, capsys):
    space = json.dumps([{"name": "units", "type": "int", "min": 8, "max": 64}])
    message = _prepare_fails(tmp_path / "runs" / "r", capsys, "--model", WIDE_AND_DEEP, "--search-space", space)
    assert message == (f"error: --search-space.units: not a hyperparameter of {WIDE_AND_DEEP}; it declares: "
                       "num_hidden_layers, hidden_size, dropout, cross_bins, bottleneck, bottleneck_units, learning_rate, "
                       "batch_size"), message


@pytest.mark.parametrize("override, reason", [
    # the run's conf could widen what the model's author declared: a 10^6-unit layer on a GPU pod
    ({"name": "hidden_size", "type": "int", "min": 32, "max": 1000000},
     "hidden_size=1000000 is outside [32, 256]: an override may only narrow or fix what the model declares"),
    ({"name": "dropout", "type": "choice", "values": [0.1, 0.9]},
     "dropout=0.9 is not one of its values: an override may only narrow or fix what the model declares"),
    ({"name": "dropout", "type": "float", "min": 0.0, "max": 0.3},
     "dropout is declared as a choice of 0.0, 0.1, 0.2, 0.3: override it with a choice of some of them"),
    ({"name": "bottleneck", "type": "choice", "values": [1]},
     "bottleneck=1 is not a boolean: an override may only narrow or fix what the model declares"),
])
def test_an_override_may_only_narrow_what_the_model_declares(prepared, override, reason):
    from trainer.errors import BadInput
    from trainer import featurespec
    from trainer.tuning import search_space as ss
    from trainer.user_model import load

    from tune_contract.search_space import validate

    declared = load(WIDE_AND_DEEP).declared_space(featurespec.load(prepared["result"]["feature_spec"]))
    with pytest.raises(BadInput) as refused:
        ss.apply_overrides(declared, validate([override]), WIDE_AND_DEEP, "random")
    assert str(refused.value) == f"--search-space.{override['name']}: {reason}"


def test_grid_refuses_a_continuous_declared_parameter_at_prepare(models_dir, tmp_path, capsys):
    name = _package(models_dir, "continuous", GOOD_INPUTS + textwrap.dedent('''
        def build(hp, spec, task):
            hp.Float('scale', 0.1, 1.0)
            return numeric_model(spec, task, inputs_of(spec))
        '''))
    message = _prepare_fails(tmp_path / "runs" / "r", capsys, "--model", name, "--algorithm", "grid")
    assert message.startswith("error: --search-space.scale: the grid algorithm needs every parameter discrete"), message


def test_the_declared_space_holds_conditional_hyperparameters_and_overrides_keep_them(prepared):
    from trainer import featurespec
    from trainer.tuning import search_space as ss
    from trainer.user_model import load

    from tune_contract.search_space import validate

    spec = featurespec.load(prepared["result"]["feature_spec"])
    model = load(WIDE_AND_DEEP)
    declared = model.declared_space(spec)
    by_name = {hp.name: hp for hp in declared.space}
    # declared only inside `hp.conditional_scope("bottleneck", [True])`, off by default: found
    # because the space is populated as Keras Tuner does, turning every scope on once
    assert [(c.name, c.values) for c in by_name["bottleneck_units"].conditions] == [("bottleneck", [True])]
    assert "bottleneck_units" not in declared.values  # inactive with the defaults

    overrides = validate([{"name": "bottleneck", "type": "choice", "values": [True]},
                          {"name": "bottleneck_units", "type": "int", "min": 8, "max": 16, "step": 8}])
    space = {hp.name: hp for hp in ss.apply_overrides(declared, overrides, WIDE_AND_DEEP, "random").space}
    assert type(space["bottleneck"]).__name__ == "Fixed" and space["bottleneck"].value is True
    assert (space["bottleneck_units"].min_value, space["bottleneck_units"].max_value) == (8, 16)
    assert [c.name for c in space["bottleneck_units"].conditions] == ["bottleneck"]
    assert type(space["hidden_size"]).__name__ == "Int" and space["hidden_size"].max_value == 256  # as declared


def test_a_conditional_hyperparameter_reaches_the_trained_model(trained_wide_and_deep, prepared):
    import tensorflow as tf

    assert trained_wide_and_deep["model"] == WIDE_AND_DEEP
    hps = trained_wide_and_deep["hyperparameters"]
    assert {k: hps[k] for k in WIDE_AND_DEEP_HYPERPARAMETERS} == WIDE_AND_DEEP_HYPERPARAMETERS
    assert hps["cross_bins"] == 256  # undeclared in the flags: the model's default
    shapes = {v.name: tuple(v.shape) for v in tf.saved_model.load(trained_wide_and_deep["model_path"]).variables}
    assert shapes["bottleneck/kernel:0"] == (32, 12)  # hidden_size x bottleneck_units
    assert any(name.startswith("price_standardized/") for name in shapes)

    # with the Boolean off the layer does not exist, and its size is not a value of the model
    code, off = run_step("train", prepared["run_root"], "--rank", "4", "--epochs", "1", "--model", WIDE_AND_DEEP,
                         "--hyperparameters", json.dumps({**WIDE_AND_DEEP_HYPERPARAMETERS, "bottleneck": False}))
    assert code == 0 and "bottleneck_units" not in off["hyperparameters"]
    assert not [v for v in tf.saved_model.load(off["model_path"]).variables if "bottleneck" in v.name]


def test_hyperparameters_the_user_model_does_not_declare_are_refused_at_train(prepared, capsys):
    code, _ = run_step("train", prepared["run_root"], "--rank", "8", "--model", WIDE_AND_DEEP,
                       "--hyperparameters", '{"units": 64}')
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and message.startswith(f"error: --hyperparameters.units: not a hyperparameter of {WIDE_AND_DEEP}")


MIRRORED = textwrap.dedent('''
    import sys

    import tensorflow as tf

    # No GPU here: two logical CPU devices stand in for a pod's two GPUs.
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

    from trainer import distribution

    distribution.replica_devices = lambda: [d.name for d in tf.config.list_logical_devices("CPU")]
    from trainer.cli import main

    sys.exit(main(sys.argv[1:]))
''')


def test_training_under_mirrored_strategy_with_two_replicas_resumes_and_exports(prepared, tmp_path):
    import numpy as np
    import tensorflow as tf
    from trainer import featurespec

    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    flags = ["train", "--run-root", str(prepared["run_root"]), "--rank", "11", "--model", WIDE_AND_DEEP,
             "--seed", "5", "--hyperparameters", json.dumps(WIDE_AND_DEEP_HYPERPARAMETERS)]

    def train(epochs: int) -> dict:
        xcom = tmp_path / f"train-{epochs}.json"
        done = subprocess.run([sys.executable, str(script), *flags, "--epochs", str(epochs), "--xcom-file", str(xcom)],
                              capture_output=True, text=True, timeout=600, env=cli_env())
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(xcom.read_text())

    first = train(1)
    assert first["replicas"] == 2 and first["global_batch_size"] == 2 * WIDE_AND_DEEP_HYPERPARAMETERS["batch_size"]
    assert (first["initial_epoch"], first["epochs"]) == (0, 1)
    resumed = train(2)  # a restarted pod: BackupAndRestore continues after the finished epoch
    assert resumed["replicas"] == 2 and (resumed["initial_epoch"], resumed["epochs"]) == (1, 2)
    assert all(np.isfinite(v) for v in resumed["metrics"].values())

    spec = featurespec.load(prepared["result"]["feature_spec"])
    loaded = tf.saved_model.load(resumed["model_path"])
    instances = json.loads((Path(prepared["result"]["data_dir"]) / "sample_instances.json").read_text())["instances"]
    columns = {name: tf.constant([row[name] for row in instances],
                                 dtype=tf.string if spec.is_categorical(name) else tf.float32)
               for name in spec.feature_names}
    predicted = loaded.signatures["serving_default"](**columns)["price"].numpy()
    assert predicted.shape == (len(instances), 1) and np.isfinite(predicted).all()


def test_a_tuner_pod_with_two_gpus_tunes_under_mirrored_strategy(prepared, tmp_path):
    """A tuner whose pod has two GPUs (two logical CPU devices here) runs its trials under
    MirroredStrategy with the global batch, and says so in its result."""
    from tuning_helpers import Search

    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    run_root = tmp_path / "runs" / "r1"
    shutil.copytree(prepared["run_root"] / "data", run_root / "data")
    search = Search(tmp_path, run_root, "--model", WIDE_AND_DEEP, "--max-trials", "2", "--epochs", "1",
                    "--seed", "3", "--algorithm", "random")
    try:
        chief = search.chief("--lease-seconds", "120")
        tuner = search.worker("tuner-0", "--heartbeat-seconds", "1", launcher=script)
        oracle, tuned = chief.result(timeout=600), tuner.result(timeout=600)
    finally:
        search.stop_all()
    assert tuned["replicas"] == 2
    assert oracle["completed"] == 2 and [t["tuner_id"] for t in oracle["trials"]] == ["tuner-0"] * 2
    assert all(math.isfinite(t["objective"]) for t in oracle["trials"])


def test_the_readme_model_is_a_working_model(models_dir, prepared, tmp_path, capsys):
    """The README's complete user model, as a user saves it, passes prepare and trains."""
    import re

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    [source] = re.findall(r"save this as `include/models/my_models/price.py`.*?```python\n(.*?)```", readme, re.S)
    name = _package(models_dir, "readme_models", source)

    code, result = run_step("prepare", tmp_path / "runs" / "readme", "--sample-rows", "300", "--model", name,
                            "--search-space", '[{"name": "dropout", "type": "choice", "values": [true]}]')
    assert code == 0, capsys.readouterr().err[-2000:]
    assert result["model"]["hyperparameters"] == ["layers", "units", "dropout", "rate", "learning_rate"]
    code, trained = run_step("train", tmp_path / "runs" / "readme", "--rank", "0", "--epochs", "1", "--model", name,
                             "--hyperparameters", '{"dropout": true, "rate": 0.2, "units": 32}')
    assert code == 0 and trained["hyperparameters"]["rate"] == 0.2 and trained["replicas"] == 1


def test_the_built_in_model_declares_the_contract_space_with_its_defaults(prepared):
    from trainer import featurespec
    from trainer.model import DEFAULT_HYPERPARAMETERS
    from trainer.tuning import search_space as ss
    from trainer.user_model import load

    from tune_contract.enums import DEFAULT_MODEL
    from tune_contract.search_space import MODEL_HYPERPARAMETERS

    declared = load(DEFAULT_MODEL).declared_space(featurespec.load(prepared["result"]["feature_spec"]))
    assert tuple(ss.declared_names(declared)) == MODEL_HYPERPARAMETERS
    assert declared.values == DEFAULT_HYPERPARAMETERS
    # declared exactly as the declarative default space turns into the oracle's (same grid points)
    assert [hp.get_config() | {"default": None} for hp in declared.space] == \
        [hp.get_config() | {"default": None} for hp in ss.to_hyperparameters(ss.load(None)).space]


def test_the_models_folder_imports_no_airflow():
    import ast

    models = Path(__file__).resolve().parents[2] / "include" / "models"
    for path in models.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not [n for n in names if n.split(".")[0] in ("airflow", "tune_serve")], path
