"""The trainer's steps and the Airflow side's readers on gs://, against the emulator.

`prepare` and `train` run as a pod runs them (`python -m trainer`, TensorFlow's own gs://
client) with the run's root in a bucket: TFRecords, the feature spec, checkpoints, TensorBoard
logs, the learning curves and the SavedModel all land there; the run view and the artifact
viewer then read the run from the bucket (gcsfs through Airflow's ObjectStoragePath).

Not yet here (README, *GCS in the tests*): `evaluate` (TFMA writes through Beam's gcsio, whose
batch requests the emulator does not answer), the chief and tuners, and a whole run through
the scheduler."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, TRAINER_PY
from google.cloud import storage

TINY = {"num_layers": 1, "units": 16, "batch_size": 64, "learning_rate": 0.01}


def trainer(step: str, run_root: str, *flags: str, xcom) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO / "include" / "trainer"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    argv = [str(TRAINER_PY), "-m", "trainer", step, f"--run-root={run_root}", f"--xcom-file={xcom}", *flags]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env)
    assert out.returncode == 0, f"{step}: " + "\n".join(out.stderr.splitlines()[-15:])
    return json.loads(xcom.read_text())


def objects(uri: str) -> set[str]:
    bucket, _, prefix = uri.removeprefix("gs://").partition("/")
    client = storage.Client.create_anonymous_client()
    client.project = "emulator"
    return {b.name.removeprefix(prefix + "/") for b in client.list_blobs(bucket, prefix=prefix + "/")}


@pytest.fixture(scope="module")
def run_on_gcs(gcs, tmp_path_factory):
    bucket = gcs.bucket("steps")
    root = f"{bucket}/storage/runs/gcs-steps"
    xcoms = tmp_path_factory.mktemp("xcom")
    prepared = trainer("prepare", root, "--source=diamonds", "--sample-rows=600", "--seed=7",
                       f"--data-roots={REPO / 'data'}", xcom=xcoms / "prepare.json")
    trained = trainer("train", root, "--rank=0", "--epochs=2", "--seed=1", "--trial-id=t-1",
                      f"--hyperparameters={json.dumps(TINY)}", xcom=xcoms / "train.json")
    return bucket, root, prepared, trained


def test_prepare_and_train_write_everything_to_the_bucket(run_on_gcs):
    _, root, prepared, trained = run_on_gcs
    stored = objects(root)
    assert {"data/train.tfrecord", "data/eval.tfrecord", "data/feature_spec.json"} <= stored, sorted(stored)
    assert not [name for name in stored if ".tmp-" in name]  # every temporary name was renamed or removed
    assert trained["model_path"] == f"{root}/models/0/saved_model"
    assert "models/0/saved_model/saved_model.pb" in stored
    assert "models/0/saved_model/assets.extra/feature_spec.json" in stored
    assert any(n.startswith("models/0/logs/train/events.out.tfevents") for n in stored)
    assert any(n.startswith("models/0/checkpoints/") for n in stored)
    history = storage.Client.create_anonymous_client().bucket(root.split("/")[2]).blob(
        "storage/runs/gcs-steps/models/0/logs/history.csv").download_as_text().splitlines()
    assert history[0].startswith("epoch,") and [r.split(",")[0] for r in history[1:]] == ["0", "1"]
    assert prepared["train_examples"] + prepared["eval_examples"] == 600


def test_the_run_view_and_the_artifact_viewer_read_the_bucket(run_on_gcs, monkeypatch, tmp_path):
    """The run view's own test run (tests/airflow/test_run_view.write_run: trials, candidates, a
    summary), uploaded to the bucket, renders from there; the viewer serves the train step's result."""
    sys.path.insert(0, str(REPO / "tests" / "airflow"))
    from fastapi.testclient import TestClient
    from test_run_view import RUN_ID, write_run

    from tune_serve.web import airflow_runs, artifacts
    from tune_serve.web.ui import app as view

    bucket, root, _, trained = run_on_gcs
    local = write_run(tmp_path / "storage")
    blobs = storage.Client.create_anonymous_client().bucket(bucket.removeprefix("gs://"))
    for path in local.rglob("*"):
        if path.is_file():
            blobs.blob(f"storage/runs/{RUN_ID}/{path.relative_to(local)}").upload_from_filename(path)
    monkeypatch.setenv("TUNE_SERVE_STORAGE_ROOT", f"{bucket}/storage")
    monkeypatch.setattr(airflow_runs, "facts", lambda run_id, dag_id=None: None)  # no metadata DB here
    for app in (view.app, artifacts.app):  # a user the auth manager lets read task logs
        app.dependency_overrides[artifacts.require_task_log_access] = lambda: None
    try:
        page = TestClient(view.app).get(f"/runs/{RUN_ID}")
        assert page.status_code == 200, page.text[:300]
        assert 'id="leaderboard"' in page.text and "data-trial-id=" in page.text
        viewer = TestClient(artifacts.app).get("/artifacts", params={"uri": f"{root}/models/0/training.json"})
        assert viewer.status_code == 200, viewer.text[:300]
        assert viewer.json()["model_path"] == trained["model_path"]
    finally:
        for app in (view.app, artifacts.app):
            app.dependency_overrides.clear()
