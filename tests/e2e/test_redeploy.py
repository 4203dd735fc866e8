"""Issue 29 through the real scheduler: what an operator does after a few runs of one model
(clear a deploy, clear a whole run, run two at once) never ships a stale verdict nor publishes a
candidate twice. Also the built-in model's second and later runs (issue 27: warm start on)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from conftest import TINY
from helpers import assert_succeeded

from tune_serve.config import DAG_ID

pytestmark = pytest.mark.e2e

MODEL = "redeploy-e2e"
# no baseline gate (the form's max_mae_increase is 0: off here): every candidate is blessed, so what
# decides whether it ships is only whether its verdict still holds
CONF = {**TINY, "max_trials": 2, "num_tuners": 1, "top_n": 1, "training_epochs": 2, "max_mae_increase": None,
        "model_name": MODEL}


def _versions(env) -> list[int]:
    base = Path(env["TUNE_SERVE_SERVING_ROOT"]) / MODEL
    return sorted(int(p.name) for p in base.iterdir() if p.name.isdigit())


def _stable(env) -> int:
    config = Path(env["TUNE_SERVE_SERVING_ROOT"]) / f"{MODEL}.config.json"
    return json.loads(config.read_text())["version_labels"]["stable"]


def _version_path(env, version: int) -> str:
    return str(Path(env["TUNE_SERVE_SERVING_ROOT"]).absolute() / MODEL / str(version))


def _clear(client, run_id: str, task_ids: list[str] | None) -> None:
    """Airflow's Clear on a task and what follows it (or, without task ids, on the whole run)."""
    body = {"dry_run": False, "dag_run_id": run_id, "only_failed": False, "reset_dag_runs": True,
            **({"task_ids": task_ids, "include_downstream": True} if task_ids else {})}
    response = client.http.post(f"/dags/{DAG_ID}/clearTaskInstances", json=body)
    assert response.status_code == 200, response.text


def _cleared_and_done(client, run_id: str, task_ids: list[str] | None) -> dict:
    """Clear, then wait until the run has ended again (its end date after the clear)."""
    previous_end = client.dag_run(run_id)["end_date"]
    _clear(client, run_id, task_ids)
    deadline = time.monotonic() + 900
    while time.monotonic() < deadline:
        run = client.dag_run(run_id)
        if run["state"] in ("success", "failed") and run["end_date"] and run["end_date"] != previous_end:
            break
        time.sleep(2)
    assert client.run_state(run_id) == "success"
    return client.xcom(run_id, "serving.deploy_serving")


@pytest.fixture(scope="module")
def two_versions(stack):
    """v1 from run a, then v2 from run b (blessed against v1), one after the other."""
    client, env = stack
    for run_id in ("e2e-redeploy-a", "e2e-redeploy-b"):
        client.wait(client.trigger(CONF, run_id=run_id), timeout=1500)
        assert_succeeded(client, run_id)
    return client, env


def test_a_later_run_is_judged_against_v1_and_replaces_it(two_versions):
    client, env = two_versions
    a, b = (client.xcom(r, "serving.deploy_serving") for r in ("e2e-redeploy-a", "e2e-redeploy-b"))
    assert (a["action"], a["version"], b["action"], b["version"], b["previous_version"]) == (
        "publish", 1, "publish", 2, 1)
    assert client.xcom("e2e-redeploy-b", "evaluation.evaluate", 0)["baseline_model_path"] == _version_path(env, 1)
    # the built-in model's second run warm-starts from its first (issue 27)
    assert client.xcom("e2e-redeploy-b", "tuning.wait_oracle")["warm_start"]["from"] == "e2e-redeploy-a"


def test_clearing_deploys_publishes_nothing_new_and_never_puts_the_older_model_back(two_versions):
    client, env = two_versions
    later = _cleared_and_done(client, "e2e-redeploy-b", ["serving.deploy_serving"])
    assert (later["action"], later["version"], later["serving_version"]) == ("already_published", 2, 2)
    assert client.xcom("e2e-redeploy-b", "summarize")["outcome"].startswith(f"deployed {MODEL} v2 (candidate 0")

    earlier = _cleared_and_done(client, "e2e-redeploy-a", ["serving.deploy_serving"])
    assert (earlier["action"], earlier["version"], earlier["serving_version"]) == ("already_published", 1, 2)
    assert client.xcom("e2e-redeploy-a", "summarize")["outcome"] == (
        f"nothing new deployed: {MODEL}: this run's candidate 0 is already v1 (published by an earlier try); "
        "v2 serves now: left as it is")
    assert _versions(env) == [1, 2] and _stable(env) == 2


def test_clearing_a_whole_run_judges_it_again_against_what_serves(two_versions):
    client, env = two_versions
    again = _cleared_and_done(client, "e2e-redeploy-a", None)
    evaluation = client.xcom("e2e-redeploy-a", "evaluation.evaluate", 0)
    assert evaluation["baseline_model_path"] == _version_path(env, 2), "the old verdict was reused"
    assert (again["action"], again["version"], again["serving_version"]) == ("already_published", 1, 2)
    assert _versions(env) == [1, 2] and _stable(env) == 2


def test_two_runs_at_once_never_ship_a_stale_verdict(two_versions):
    client, env = two_versions
    before = _stable(env)
    run_ids = [client.trigger(CONF, run_id=f"e2e-redeploy-{name}") for name in ("c", "d")]
    for run_id in run_ids:
        client.wait(run_id, timeout=1500)
        assert_succeeded(client, run_id)
    deployed = {run_id: client.xcom(run_id, "serving.deploy_serving") for run_id in run_ids}
    published = sorted((d["version"], run_id) for run_id, d in deployed.items() if d["action"] == "publish")
    assert published, deployed
    assert [v for v, _ in published] == _versions(env)[-len(published):] and _stable(env) == published[-1][0]
    previous = before
    for version, run_id in published:  # each published version was judged against the one it replaced
        assert client.xcom(run_id, "evaluation.evaluate", 0)["baseline_model_path"] == _version_path(env, previous)
        assert deployed[run_id]["previous_version"] == previous
        previous = version
    for run_id, d in deployed.items():
        if d["action"] == "refused":
            summary = client.xcom(run_id, "summarize")
            assert summary["outcome"].startswith(f"nothing deployed: candidate 0 refused: evaluated against v{before}; "
                                                 f"v{published[-1][0]} serves now")
            assert summary["deployed"] is None
