"""A whole run on gs://: the local backend with its storage root in a bucket of the emulator,
through the real scheduler. prepare → tune (chief + 2 tuners) → train → TFMA → deploy →
summarize, every file a run writes and reads in the bucket (TFRecords, the chief's state,
checkpoints, TensorBoard logs, SavedModels, TFMA's output, results, summary); a served
prediction; the run view and the artifact viewer read the bucket.

The serving root stays local here: the local model store publishes a version by renaming a
folder and the local TF Serving stand-in watches a folder (README, *GCS in the tests*).

Skipped until `evaluate` runs on gs://: tried here, prepare, the chief and both tuners, and both
trainings passed on the bucket; TFMA then failed finalising its write through Beam's gcsio,
whose rename and delete go as one batch request (`POST /batch/storage/v1`, multipart/mixed)
that fake-gcs-server answers with a single part ("Bad response: not multi-part"). The emulator
needs GCS's batch endpoint (the harness could split a batch into single calls)."""
from __future__ import annotations

import sys
from urllib.parse import quote

import httpx
import pytest
from conftest import REPO
from google.cloud import storage

sys.path.insert(0, str(REPO / "tests" / "e2e"))
import private_airflow  # noqa: E402
from helpers import assert_succeeded, savedmodel_predict  # noqa: E402

pytestmark = pytest.mark.skip(reason="evaluate (TFMA through Beam's gcsio) needs GCS's batch endpoint, "
                                     "which the emulator lacks (module docstring)")

CONF = {"source": "diamonds", "sample_rows": 1500, "algorithm": "random", "max_trials": 4, "num_tuners": 2,
        "tuning_epochs": 2, "top_n": 2, "training_epochs": 3, "early_stopping_patience": 2,
        "mae_upper_bound": 100000.0, "model_name": "diamonds-gcs"}


@pytest.fixture(scope="module")
def gcs_stack(gcs, tmp_path_factory):
    bucket = gcs.bucket("tune-serve")
    env = private_airflow.private_env(tmp_path_factory.mktemp("gcs-stack"), **gcs.env,
                                      TUNE_SERVE_STORAGE_ROOT=f"{bucket}/storage")
    try:
        yield private_airflow.start(env), env, bucket
    finally:
        private_airflow.stop(env)


@pytest.fixture(scope="module")
def gcs_run(gcs_stack):
    client, env, bucket = gcs_stack
    run_id = client.trigger(CONF, run_id="gcs-run")
    return client, env, bucket, run_id, client.wait(run_id, timeout=1500)


def _objects(bucket: str, prefix: str) -> set[str]:
    client = storage.Client.create_anonymous_client()
    client.project = "emulator"
    return {b.name for b in client.list_blobs(bucket.removeprefix("gs://"), prefix=prefix)}


def test_a_whole_run_on_gcs_serves_a_prediction(gcs_run):
    client, env, bucket, run_id, state = gcs_run
    assert_succeeded(client, run_id, state)
    stored = _objects(bucket, f"storage/runs/{run_id}/")
    for name in ("summary.json", "data/feature_spec.json", "tuning/oracle_result.json"):
        assert f"storage/runs/{run_id}/{name}" in stored, sorted(stored)[:40]

    deployed = client.xcom(run_id, "serving.deploy_serving")
    version_dir = f"{env['TUNE_SERVE_SERVING_ROOT']}/{deployed['model_name']}/{deployed['version']}"
    instance = client.xcom(run_id, "prepare_data")["sample_instance"]
    served = httpx.post(deployed["url"], json={"instances": [instance]}, timeout=30).json()["predictions"]
    assert served[0] == pytest.approx(savedmodel_predict(version_dir, instance), rel=1e-5)


def test_the_run_view_and_the_artifact_viewer_read_the_bucket(gcs_run):
    _, env, bucket, run_id, _ = gcs_run
    base = f"http://127.0.0.1:{env['AIRFLOW_PORT']}"
    view = httpx.get(f"{base}/tune-serve-view/runs/{run_id}", timeout=60)
    assert view.status_code == 200 and "run-outcome" in view.text
    assert "diamonds-gcs" in view.text
    stored = f"{bucket}/storage/runs/{run_id}/summary.json"
    summary = httpx.get(f"{base}/tune-serve/artifacts", params={"uri": stored}, timeout=60)
    assert summary.status_code == 200, summary.text[:300]
    assert summary.json()["run_id"] == run_id
    assert quote(run_id) in view.text or run_id in view.text
