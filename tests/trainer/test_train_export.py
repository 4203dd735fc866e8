"""Step `train`: result, artefacts, the two serving signatures, early stopping, resume after SIGKILL."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_HYPERPARAMETERS, cli_env, run_step


def model_dir(prepared, rank: int) -> Path:
    return Path(prepared["run_root"]) / "models" / str(rank)


def eval_records(prepared, n: int) -> list[bytes]:
    import tensorflow as tf

    path = str(Path(prepared["run_root"]) / "data" / "eval.tfrecord")
    return list(tf.data.TFRecordDataset(path).take(n).as_numpy_iterator())


def test_train_result_and_artefacts(trained, prepared):
    out = model_dir(prepared, 0)
    assert trained["rank"] == 0 and trained["trial_id"] == "t-007"
    assert trained["hyperparameters"] == {**TINY_HYPERPARAMETERS, "dropout": 0.1}  # defaults filled, tuner/ keys dropped
    assert trained["model_path"] == str(out / "saved_model")
    assert (trained["epochs"], trained["initial_epoch"]) == (2, 0)
    assert set(trained["metrics"]) >= {"loss", "mae"}
    assert all(math.isfinite(v) for v in trained["metrics"].values())
    # The shipped weights are the best epoch's: their eval MAE is the best val_mae seen.
    assert trained["metrics"]["mae"] == pytest.approx(trained["objective"]["best"], rel=1e-4)
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert (out / "saved_model" / "assets.extra" / "feature_spec.json").is_file()
    assert list((out / "logs" / "train").glob("events.out.tfevents.*"))
    assert list((out / "logs" / "validation").glob("events.out.tfevents.*"))
    # the learning curves the run view draws: one row per epoch, training and validation metrics
    history = (out / "logs" / "history.csv").read_text().splitlines()
    assert history[0].split(",")[0] == "epoch" and {"mae", "val_mae"} <= set(history[0].split(","))
    assert [row.split(",")[0] for row in history[1:]] == ["0", "1"]
    assert (out / "checkpoints" / "latest" / "latest.weights.h5").is_file()
    assert json.loads((out / "training.json").read_text())["model_path"] == trained["model_path"]
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


def signature_def_inputs(model_path: str, signature: str = "serving_default") -> dict:
    """The SignatureDef's inputs, as TF Serving reads them (what `saved_model_cli show` lists)."""
    from tensorflow.python.saved_model import loader_impl

    return dict(loader_impl.parse_saved_model(model_path).meta_graphs[0].signature_def[signature].inputs)


@pytest.mark.parametrize("model", ["trained", "trained_wide_and_deep"])  # the built-in model, a user model
def test_both_signatures_give_the_same_predictions(model, prepared, request):
    import tensorflow as tf
    from trainer import featurespec

    trained = request.getfixturevalue(model)
    spec = featurespec.load(prepared["result"]["feature_spec"])
    loaded = tf.saved_model.load(trained["model_path"])
    # serving_default takes what a REST client sends without a signature name (named raw
    # features, one scalar each); from_examples takes serialized tf.Examples (TFMA, batch).
    assert set(loaded.signatures) == {"serving_default", "from_examples"}
    inputs = signature_def_inputs(trained["model_path"])
    assert set(inputs) == set(spec.feature_names)
    assert all([d.size for d in i.tensor_shape.dim] == [-1] for i in inputs.values())

    records = eval_records(prepared, 16)
    by_example = loaded.signatures["from_examples"](examples=tf.constant(records))["price"]
    raw = {name: tf.reshape(t, [-1]) for name, t in tf.io.parse_example(records, spec.parse_spec()).items()}
    by_raw = loaded.signatures["serving_default"](**raw)["price"]
    assert by_example.shape == (16, 1) and by_example.dtype == tf.float32
    np.testing.assert_allclose(by_example.numpy(), by_raw.numpy(), rtol=1e-6)
    assert len(np.unique(by_example.numpy())) > 1  # the rows really differ

    # The sample instances written by prepare are the first eval rows, as a client sends them.
    instances = json.loads((Path(prepared["result"]["data_dir"]) / "sample_instances.json").read_text())["instances"]
    columns = {name: tf.constant([row[name] for row in instances],
                                 dtype=tf.string if spec.is_categorical(name) else tf.float32)
               for name in spec.feature_names}
    from_instances = loaded.signatures["serving_default"](**columns)["price"]
    np.testing.assert_allclose(from_instances.numpy(), by_example.numpy()[: len(instances)], rtol=1e-5)


def test_rerun_after_completion_resumes_at_the_end(trained, prepared):
    code, again = run_step("train", prepared["run_root"], "--rank", "0", "--epochs", "2", "--seed", "1",
                           "--trial-id", "t-007", "--hyperparameters", json.dumps(TINY_HYPERPARAMETERS))
    assert code == 0
    assert (again["initial_epoch"], again["epochs"]) == (2, 2)  # nothing trained again
    assert again["metrics"]["mae"] == pytest.approx(trained["metrics"]["mae"], rel=1e-6)


def test_other_hyperparameters_start_afresh(prepared):
    flags = ("--rank", "5", "--epochs", "1", "--seed", "1")
    assert run_step("train", prepared["run_root"], *flags, "--hyperparameters", '{"units": 8}')[0] == 0
    code, result = run_step("train", prepared["run_root"], *flags, "--hyperparameters", '{"units": 4}')
    assert code == 0 and result["initial_epoch"] == 0 and result["hyperparameters"]["units"] == 4


def test_early_stopping_ships_the_best_epoch_and_survives_a_restart(prepared):
    # `max` on an error that goes down: epoch 0 stays the best, patience 1 stops after epoch 1.
    flags = ("--rank", "6", "--epochs", "5", "--patience", "1", "--objective", "val_mae", "--direction", "max",
             "--hyperparameters", json.dumps(TINY_HYPERPARAMETERS))
    code, result = run_step("train", prepared["run_root"], *flags)
    assert code == 0
    assert result["stopped_early"] and result["epochs"] == 2 and result["objective"]["best_epoch"] == 0
    assert result["metrics"]["mae"] == pytest.approx(result["objective"]["best"], rel=1e-4)

    code, again = run_step("train", prepared["run_root"], *flags)
    assert code == 0 and (again["initial_epoch"], again["epochs"]) == (2, 2) and again["stopped_early"]


@pytest.mark.parametrize("flags, culprit", [
    (["--hyperparameters", '{"units": "many"}'], "--hyperparameters.units"),
    (["--hyperparameters", '{"dropout": 1.5}'], "--hyperparameters.dropout"),
    (["--hyperparameters", "[1, 2]"], "--hyperparameters"),
    (["--hyperparameters", "{units: 3}"], "--hyperparameters"),
    (["--epochs", "0"], "--epochs"),
    (["--patience", "-1"], "--patience"),
])
def test_bad_training_input_exits_2(flags, culprit, prepared, capsys):
    code, result = run_step("train", prepared["run_root"], "--rank", "9", *flags)
    message = capsys.readouterr().err.strip().splitlines()[-1]
    assert code == 2 and result is None
    assert message.startswith(f"error: {culprit}:"), message
    assert not model_dir(prepared, 9).exists()


def test_train_without_prepared_data_is_bad_input(tmp_path, capsys):
    code, _ = run_step("train", tmp_path / "never-prepared", "--rank", "0")
    assert code == 2 and "run the prepare step first" in capsys.readouterr().err


def _epoch_checkpointed(metadata: Path) -> int:
    try:
        return int(json.loads(metadata.read_text())["epoch"])
    except (FileNotFoundError, ValueError, KeyError):  # not written yet, or caught mid-write
        return 0


def test_sigkilled_train_resumes_from_its_last_epoch(prepared, tmp_path):
    rank = 7
    out = model_dir(prepared, rank)
    metadata = out / "checkpoints" / "latest" / "training_metadata.json"
    # batch_size 8: 60 steps per epoch, so epochs last long enough to be interrupted.
    hyperparameters = json.dumps({**TINY_HYPERPARAMETERS, "batch_size": 8})

    def train(epochs: int, xcom: Path) -> list[str]:
        return [sys.executable, "-m", "trainer", "train", "--run-root", str(prepared["run_root"]),
                "--xcom-file", str(xcom), "--rank", str(rank), "--epochs", str(epochs), "--patience", "0",
                "--hyperparameters", hyperparameters]

    with open(tmp_path / "killed.log", "w") as log:
        proc = subprocess.Popen(train(50, tmp_path / "killed.json"), stdout=log, stderr=subprocess.STDOUT,
                                env=cli_env())
        deadline = time.monotonic() + 180
        while _epoch_checkpointed(metadata) < 2:
            assert proc.poll() is None, (tmp_path / "killed.log").read_text()[-2000:]
            assert time.monotonic() < deadline, "no second epoch checkpoint within 180 s"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = _epoch_checkpointed(metadata)
    assert 2 <= killed_at < 50
    assert not (tmp_path / "killed.json").exists() and not (out / "saved_model").exists()

    finished = subprocess.run(train(killed_at + 1, tmp_path / "resumed.json"), capture_output=True, text=True,
                              env=cli_env(), timeout=300)
    assert finished.returncode == 0, finished.stderr[-2000:]
    result = json.loads((tmp_path / "resumed.json").read_text())
    # It restarts at the last checkpointed epoch: at most the interrupted epoch runs again.
    assert result["initial_epoch"] == killed_at
    assert result["epochs"] == killed_at + 1
    assert (out / "saved_model" / "saved_model.pb").is_file()
    assert (out / "saved_model" / "variables" / "variables.index").is_file()
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]


AIRQUALITY_CSV = """Ozone,Solar.R,Wind,Temp,Month,Day
41,190,7.4,67,5,1
36,118,8,72,5,2
12,149,12.6,74,5,3
18,313,11.5,62,5,4
,,14.3,56,5,5
28,,14.9,66,5,6
23,299,8.6,65,5,7
19,99,13.8,59,5,8
8,19,20.1,61,5,9
,194,8.6,69,5,10
7,,6.9,74,5,11
16,256,9.7,69,5,12
11,290,9.2,66,5,13
14,274,10.9,68,5,14
18,65,13.2,58,5,15
14,334,11.5,64,5,16
34,307,12,66,5,17
6,78,18.4,57,5,18
30,322,11.5,68,5,19
11,44,9.7,62,5,20
"""


def test_airquality_names_from_prepare_to_a_rest_prediction(tmp_path):
    """R's airquality shape (`Solar.R`): prepare, train, export, then a REST predict on the local
    TF Serving stand-in with the original column names and no signature name."""
    from conftest import REPO

    source = tmp_path / "airquality.csv"
    source.write_text(AIRQUALITY_CSV)
    run_root = tmp_path / "runs" / "aq"
    code, prepared = run_step("prepare", run_root, "--source", str(source), "--label", "Ozone",
                              "--eval-fraction", "0.25")
    assert code == 0
    assert prepared["name_mapping"] == {"Solar.R": {"keras_input": "Solar_R", "signature_key": "Solar.R"}}
    code, trained = run_step("train", run_root, "--rank", "0", "--epochs", "1", "--seed", "1",
                             "--hyperparameters", json.dumps(TINY_HYPERPARAMETERS))
    assert code == 0

    # TF Serving matches request keys against the SignatureDef: the original names.
    assert set(signature_def_inputs(trained["model_path"])) == {"Solar.R", "Wind", "Temp", "Month", "Day"}

    serving_python = REPO / ".venv" / "serving" / "bin" / "python"
    if not serving_python.exists():
        pytest.skip("no serving environment (make envs)")
    import shutil
    import socket
    import time
    import urllib.error
    import urllib.request

    base = tmp_path / "serving" / "aq"
    base.mkdir(parents=True)
    shutil.copytree(trained["model_path"], base / "1")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(serving_python), "-m", "tf_serving_rest", "--model-name", "aq",
                               "--model-base-path", str(base), "--port", str(port), "--poll-seconds", "0.2"],
                              env={**os.environ, "PYTHONPATH": str(REPO / "include" / "serving")},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        body = json.dumps({"instances": [prepared["sample_instance"]]}).encode()
        assert "Solar.R" in prepared["sample_instance"]
        deadline, answer = time.monotonic() + 180, None
        while time.monotonic() < deadline and answer is None:
            try:
                request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/aq:predict", data=body)
                with urllib.request.urlopen(request, timeout=5) as response:
                    answer = json.loads(response.read())
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.5)
        assert answer is not None, "the stand-in never answered"
        [[prediction]] = answer["predictions"]
        assert np.isfinite(prediction)
    finally:
        server.terminate()
        server.wait(30)
