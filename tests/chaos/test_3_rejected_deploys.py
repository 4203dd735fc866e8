"""Case 6: a new version that fails its smoke test, or fails to load, leaves the previous version
serving (and traffic on it undisturbed).

The injection: the model a finished run selected is replaced on storage by a bad one and deployed
with the backend's own deployment (`tune_serve.workflow.backend.current().deploy`, in a process of its own, as a
worker runs it), outside a run: clearing the run's `serving.deploy_serving` can no longer get a
changed artifact served (issue 29: its verdict was judged on the good model against another
version, so the deploy refuses it, see test_2's pair). Two bad artifacts, as a broken export or
a bad upload would leave them:
- a NaN model: the run's own architecture and export code, every weight NaN. It loads, and
  answers NaN: the smoke test must refuse it;
- an unloadable model: the run's good SavedModel with a garbage saved_model.pb. The server
  must report it failed to load.
Training to NaN through the DAG is no way to get there: a NaN trial has no objective, so the
search would rank nothing and the run would stop before training.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from chaos_helpers import (
    MAIN_MODEL,
    REPO,
    PredictionStream,
    labels,
    run_trainer_script,
    serving_port,
    version_prediction,
)

from tune_serve.serving.rest_client import TFServingREST

pytestmark = pytest.mark.chaos

NAN_MODEL = """
import json, sys
import numpy as np
from trainer import data, savedmodel, user_model
run_root, model_name, hyperparameters, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
spec = data.load_feature_spec(data.data_dir(run_root))
builder = user_model.load(model_name)
model = builder.build(builder.hyperparameters(builder.declared_space(spec), hyperparameters), spec)
model.set_weights([np.full(w.shape, np.nan, w.dtype) if np.issubdtype(w.dtype, np.floating) else w
                   for w in model.get_weights()])
savedmodel.export_saved_model(model, spec, out)
"""


def version_numbers(base: Path) -> list[int]:
    """Every version number used: served ones (`N/`) and rejected ones moved aside (`.rejected-N/`)."""
    names = [p.name.removeprefix(".rejected-") for p in base.iterdir()]
    return sorted(int(n) for n in names if n.isdigit())


DEPLOY = ("import json, sys; from tune_serve.workflow.backend import current\n"
          "print(json.dumps(current().deploy(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))")


def _redeploy(stack, model_path: Path, instance: dict) -> dict:
    """Deploy `model_path` as the next version of MAIN_MODEL with the backend's deployment, in a
    process with the stack's settings, as a worker would."""
    started = time.time()
    env = dict(os.environ, **stack.env, PYTHONPATH=str(REPO / "plugins"))
    done = subprocess.run([str(REPO / ".venv" / "airflow" / "bin" / "python"), "-c", DEPLOY, str(model_path),
                           MAIN_MODEL, json.dumps(instance)], env=env, capture_output=True, text=True, timeout=900)
    ended = time.time()
    versions = version_numbers(stack.serving / MAIN_MODEL)
    base_url = f"http://127.0.0.1:{serving_port(stack.serving, MAIN_MODEL)}"
    with TFServingREST(base_url, MAIN_MODEL) as server:  # now: a later deployment changes what is loaded
        new_status = server.version_status(version=versions[-1])
    return {"new_status": new_status, "started": started, "ended": ended, "returncode": done.returncode,
            "error": done.stderr[-2000:], "deploy_seconds": ended - started,
            "labels": labels(stack.serving, MAIN_MODEL), "versions": versions}


@pytest.fixture(scope="module")
def rejected(stack, runs):
    run = runs["faulted"]
    selected = Path(run.xcom("serving.select_model")["model_path"])
    trained = run.xcom("training.train", int(selected.parent.name))
    instance = run.xcom("prepare_data")["sample_instance"]
    base_url = f"http://127.0.0.1:{serving_port(stack.serving, MAIN_MODEL)}"
    stable = labels(stack.serving, MAIN_MODEL)["stable"]
    serving_before = version_prediction(base_url, MAIN_MODEL, stable, instance)
    versions_before = version_numbers(stack.serving / MAIN_MODEL)
    good = selected.with_name("saved_model.good")
    selected.rename(good)
    stream = PredictionStream(base_url, MAIN_MODEL, instance)
    stream.start()
    outcomes = {}
    try:
        run_trainer_script(NAN_MODEL, str(stack.run_root(run.run_id)), trained["model"],
                           json.dumps(trained["hyperparameters"]),
                           str(selected))
        outcomes["nan"] = _redeploy(stack, selected, instance)
        shutil.rmtree(selected)
        shutil.copytree(good, selected)
        (selected / "saved_model.pb").write_bytes(b"not a SavedModel: truncated by a bad upload\n")
        outcomes["unloadable"] = _redeploy(stack, selected, instance)
    finally:
        stream.stop()
        shutil.rmtree(selected, ignore_errors=True)
        good.rename(selected)  # the run's own artifact, as it was
    return {"run": run, "stable": stable, "serving_before": serving_before, "versions_before": versions_before,
            "stream": stream, "outcomes": outcomes, "base_url": base_url}


def _check_rejected(stack, rejected, outcome: dict, record: dict) -> int:
    """Common to both: the deployment failed (ModelRejected: not worth a retry), the version
    stayed on disk unlabelled, the previous version kept serving every request."""
    stable, stream = rejected["stable"], rejected["stream"]
    window = [r for r in stream.responses if outcome["started"] <= r[0] <= outcome["ended"]]
    record["lost"]["served_versions"] = int(outcome["labels"].get("stable") != stable) + \
        int(any(not ok or json.dumps(v) != json.dumps(rejected["serving_before"]) for _, ok, v in window))
    record["cost"] = {"deploy_seconds": round(outcome["deploy_seconds"], 1), "requests_during": len(window),
                      "failed_requests_during": sum(1 for r in window if not r[1])}
    assert outcome["returncode"] != 0 and "ModelRejected" in outcome["error"], outcome["error"]
    new = max(outcome["versions"])
    assert new not in outcome["labels"].values(), "the rejected version is labelled"
    # Moved aside, kept for inspection, unknown to the server: it can never answer.
    assert (stack.serving / MAIN_MODEL / f".rejected-{new}").is_dir()
    assert not (stack.serving / MAIN_MODEL / str(new)).exists()
    assert outcome["new_status"] is None
    assert outcome["labels"]["stable"] == stable
    assert len(window) >= 10 and not [r for r in window if not r[1]]
    assert {json.dumps(v) for _, _, v in window} == {json.dumps(rejected["serving_before"])}
    return new


def test_version_failing_smoke_test_leaves_previous_serving(stack, rejected, results):
    outcome = rejected["outcomes"]["nan"]
    with results.fault(6, "new version fails its smoke test (NaN model)", rejected["run"].run_id) as record:
        new = _check_rejected(stack, rejected, outcome, record)
        assert outcome["versions"] == rejected["versions_before"] + [new]  # versions only grow


def test_version_failing_to_load_leaves_previous_serving(stack, rejected, results):
    outcome = rejected["outcomes"]["unloadable"]
    with results.fault(6, "new version fails to load (corrupt SavedModel)", rejected["run"].run_id) as record:
        new = _check_rejected(stack, rejected, outcome, record)
        assert outcome["versions"] == rejected["versions_before"] + [new - 1, new]
