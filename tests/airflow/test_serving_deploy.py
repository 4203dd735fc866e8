"""Deploying to the local TF Serving stand-in, from the Airflow side (no TensorFlow here).

    .venv/airflow/bin/python -m pytest tests/airflow/test_serving_deploy.py

Fixture SavedModels are made by tests/serving/saved_models.py in the serving environment.
The tests share one serving root and server, and run in order: each starts from the
state the previous one left (read from current_model, never assumed).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest

from tune_serve.local import backend as serving  # the local backend's deploy, as the DAG's task calls it
from tune_serve.local import server as local_server
from tune_serve.local import serving as local
from tune_serve.local.ports import free_port
from tune_serve.local.process import LocalProcess
from tune_serve.serving.errors import ModelRejected

REPO = Path(__file__).resolve().parents[2]

MODEL = "scorer"
INSTANCE = {"size": 1.5, "weight": 2.0, "colour": "green"}
BASE_SCORE = 1.5 + 2 * 2.0 + 20.0  # tests/serving/saved_models.py: score = size + 2*weight + bonus + bias
BIASES = {f"b{n}": float(n) for n in range(1, 7)}


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, str]:
    """Good SavedModels `b1`..`b6` (score = BASE_SCORE + n), `poison` (predicts NaN), `garbage` (won't load)."""
    root = tmp_path_factory.mktemp("saved_models")
    specs = [f"{name}:{bias}" for name, bias in BIASES.items()] + ["poison:0:poison"]
    subprocess.run([str(REPO / ".venv" / "serving" / "bin" / "python"), str(REPO / "tests" / "serving" / "saved_models.py"),
                    str(root), *specs], check=True, timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    garbage = root / "garbage"
    garbage.mkdir()
    (garbage / "saved_model.pb").write_bytes(b"not a protobuf")
    return {path.name: str(path) for path in root.iterdir()}


@pytest.fixture(scope="module")
def serving_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving")
    port = free_port()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TUNE_SERVE_SERVING_ROOT", str(root))
        env.setenv("TUNE_SERVE_SERVING_PORT", str(port))
        env.setenv("TUNE_SERVE_NO_VARIABLES", "1")
        env.delenv("TUNE_SERVE_BACKEND", raising=False)
        try:
            yield root
        finally:
            local.stop_all_local_servers()


def stable_version() -> int:
    return int(Path(serving.current_model(MODEL)).name)


def default_url() -> str:
    return f"http://127.0.0.1:{os.environ['TUNE_SERVE_SERVING_PORT']}/v1/models/{MODEL}:predict"


def default_score(url: str) -> float:
    response = httpx.post(url, json={"instances": [INSTANCE]}, timeout=10)
    response.raise_for_status()
    return response.json()["predictions"][0][0]


def test_a_rejected_first_deploy_leaves_the_model_absent(serving_root, saved_models):
    """The first version of a model fails its smoke test: it never answers, not even while it
    is being tested, and the model stays absent (TF Serving's 404) until a good version ships."""
    url = f"http://127.0.0.1:{os.environ['TUNE_SERVE_SERVING_PORT']}/v1/models/fresh:predict"
    answered, stop = [], threading.Event()

    def predict_steadily():
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post(url, json={"instances": [INSTANCE]})
                    if response.status_code == 200:
                        answered.append(response.text)
                except httpx.TransportError:
                    pass  # the server may still be starting
                time.sleep(0.02)

    stream = threading.Thread(target=predict_steadily)
    stream.start()
    try:
        with pytest.raises(ModelRejected, match="smoke test") as failure:
            serving.deploy(saved_models["poison"], "fresh", INSTANCE)
    finally:
        stop.set()
        stream.join()
    assert "no stable version to keep serving" in str(failure.value)
    assert answered == []
    response = httpx.post(url, json={"instances": [INSTANCE]}, timeout=10)
    assert response.status_code == 404
    assert response.json() == {"error": "Servable not found for request: Latest(fresh)"}
    assert serving.current_model("fresh") is None
    # moved aside, kept (and where it came from, as for every version published)
    assert sorted(p.name for p in (serving_root / "fresh").iterdir()) == [".provenance", ".rejected-1"]

    good = serving.deploy(saved_models["b1"], "fresh", INSTANCE)
    assert good["version"] == 2  # versions only grow: the rejected number is never reused
    assert httpx.post(url, json={"instances": [INSTANCE]}, timeout=10).status_code == 200


def test_deploy_v1_then_v2(serving_root, saved_models):
    assert serving.current_model(MODEL) is None

    first = serving.deploy(saved_models["b1"], MODEL, INSTANCE)
    assert first["version"] == 1 and first["previous_version"] is None
    assert first["prediction"] == pytest.approx([BASE_SCORE + 1])

    second = serving.deploy(saved_models["b2"], MODEL, INSTANCE)
    assert set(second) == {"model_name", "action", "reason", "version", "serving_version", "url", "previous_version",
                           "prediction"}
    assert (second["model_name"], second["version"], second["previous_version"]) == (MODEL, 2, 1)
    assert second["url"].endswith(f"/v1/models/{MODEL}:predict")
    assert default_score(second["url"]) == pytest.approx(BASE_SCORE + 2)
    assert serving.current_model(MODEL) == str(serving_root / MODEL / "2")
    assert json.loads((serving_root / f"{MODEL}.config.json").read_text()) == {"version_labels": {"stable": 2}}


@pytest.mark.parametrize("bad_model, reason", [("poison", "smoke test"), ("garbage", "failed to load")])
def test_rejected_model_leaves_the_stable_version_serving(serving_root, saved_models, bad_model, reason):
    before = stable_version()
    url = default_url()
    served_before = default_score(url)

    with pytest.raises(ModelRejected, match=reason) as failure:
        serving.deploy(saved_models[bad_model], MODEL, INSTANCE)
    assert f"version {before} keeps serving" in str(failure.value)

    assert stable_version() == before
    assert default_score(url) == served_before
    # Moved aside where the server never looks (kept for inspection), labelled nowhere.
    rejected = max(int(p.name.removeprefix(".rejected-")) for p in (serving_root / MODEL).iterdir()
                   if p.name.startswith(".rejected-"))
    assert rejected > before and not (serving_root / MODEL / str(rejected)).exists()
    labels = json.loads((serving_root / f"{MODEL}.config.json").read_text())["version_labels"]
    assert rejected not in labels.values()


def test_predictions_never_fail_during_a_switch(serving_root, saved_models):
    url = default_url()
    before = default_score(url)
    errors, scores, stop = [], [], threading.Event()

    def predict_steadily():
        with httpx.Client(timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post(url, json={"instances": [INSTANCE]})
                    if response.status_code != 200:
                        errors.append(f"HTTP {response.status_code}: {response.text}")
                    else:
                        scores.append(response.json()["predictions"][0][0])
                except httpx.HTTPError as exc:
                    errors.append(repr(exc))
                time.sleep(0.01)

    stream = threading.Thread(target=predict_steadily)
    stream.start()
    try:
        result = serving.deploy(saved_models["b3"], MODEL, INSTANCE)
        time.sleep(0.5)
    finally:
        stop.set()
        stream.join()
    assert errors == []
    assert len(scores) > 20
    assert set(round(s, 3) for s in scores) == {round(before, 3), round(BASE_SCORE + 3, 3)}
    assert scores[-1] == pytest.approx(BASE_SCORE + 3)
    assert stable_version() == result["version"]


def test_concurrent_deploys_get_distinct_ordered_versions(serving_root, saved_models):
    before = stable_version()
    results, failures = {}, []

    def deploy(name):
        try:
            results[name] = serving.deploy(saved_models[name], MODEL, INSTANCE)
        except Exception as exc:  # reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=deploy, args=(name,)) for name in ("b4", "b5")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []
    first, second = sorted(results.values(), key=lambda r: r["version"])
    assert second["version"] == first["version"] + 1
    assert second["previous_version"] == first["version"]  # deployments were serialized
    assert first["version"] > before
    assert stable_version() == second["version"]
    for name, result in results.items():  # each smoke test ran on its own version
        assert result["prediction"] == pytest.approx([BASE_SCORE + BIASES[name]])


def test_two_processes_deploying_one_model_are_serialised(serving_root, saved_models):
    """Two deploys of one model from two processes (two Airflow workers): distinct consecutive
    versions, each directory exactly one SavedModel, nothing half-staged left behind."""
    before = max(int(p.name) for p in (serving_root / MODEL).iterdir() if p.name.isdigit())
    code = ("import json, sys; from tune_serve.workflow.backend import current; "
            "print(json.dumps(current().deploy(sys.argv[1], sys.argv[2], json.loads(sys.argv[3]))))")
    env = dict(os.environ, PYTHONPATH=str(REPO / "plugins"))
    processes = {name: subprocess.Popen([str(REPO / ".venv" / "airflow" / "bin" / "python"), "-c", code,
                                         saved_models[name], MODEL, json.dumps(INSTANCE)],
                                        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for name in ("b5", "b6")}
    results = {}
    for name, process in processes.items():
        out, err = process.communicate(timeout=600)
        assert process.returncode == 0, err[-3000:]
        results[name] = json.loads(out.strip().splitlines()[-1])
    versions = sorted(r["version"] for r in results.values())
    assert versions == [before + 1, before + 2]
    for name, result in results.items():
        published = serving_root / MODEL / str(result["version"])
        source = Path(saved_models[name])
        assert sorted(str(p.relative_to(published)) for p in published.rglob("*")) == \
            sorted(str(p.relative_to(source)) for p in source.rglob("*"))
        assert all((published / p.relative_to(source)).read_bytes() == p.read_bytes()
                   for p in source.rglob("*") if p.is_file())
        assert result["prediction"] == pytest.approx([BASE_SCORE + BIASES[name]])
    assert not [p for p in (serving_root / MODEL).iterdir() if p.name.startswith(".incoming-")]


def _as_run(run_id: str, rank: int, judged_against: str | None) -> dict:
    """What deploy_serving hands the backend: the candidate and the version its verdict was judged against."""
    return {"run_id": run_id, "rank": rank, "judged_against": judged_against}


def test_a_retried_deploy_publishes_nothing_new_and_a_stale_verdict_is_refused(serving_root, saved_models):
    """Issue 29, the three clears and the overlap, on the real local server: clearing a later
    run's deploy published the same candidate again as v3; clearing an earlier run's deploy put
    its older model back over the better one; a verdict judged against v1 replaced v2."""
    name = "retried"
    first = serving.deploy(saved_models["b1"], name, INSTANCE, candidate=_as_run("run-a", 0, None))
    assert first["action"] == "publish" and first["version"] == 1
    v1 = serving.current_model(name)
    second = serving.deploy(saved_models["b2"], name, INSTANCE, candidate=_as_run("run-b", 1, v1))
    assert (second["action"], second["version"], second["previous_version"]) == ("publish", 2, 1)

    again = serving.deploy(saved_models["b2"], name, INSTANCE, candidate=_as_run("run-b", 1, v1))  # clear run-b's deploy
    assert (again["action"], again["version"], again["serving_version"]) == ("already_published", 2, 2)
    assert again["reason"] == "this run's candidate 1 is already v2, serving: nothing new published"
    earlier = serving.deploy(saved_models["b1"], name, INSTANCE, candidate=_as_run("run-a", 0, None))  # run-a's deploy
    assert (earlier["action"], earlier["version"], earlier["serving_version"]) == ("already_published", 1, 2)

    stale = serving.deploy(saved_models["b3"], name, INSTANCE, candidate=_as_run("run-c", 0, v1))  # overlapping run
    assert (stale["action"], stale["serving_version"]) == ("refused", 2)
    assert stale["reason"].startswith("evaluated against v1; v2 serves now: the verdict is stale, nothing published")
    assert local.version_labels(name)["stable"] == 2
    assert sorted(int(p.name) for p in (serving_root / name).iterdir() if p.name.isdigit()) == [1, 2], \
        "no duplicate or stale version published"


def server_record(serving_root: Path) -> dict:
    """The server's LocalProcess record: pid and kernel start ticks (one start, one record)."""
    record = json.loads((serving_root / ".server" / "process" / "process.json").read_text())
    return {"pid": record["pid"], "start_ticks": record["start_ticks"]}


def test_deploys_load_into_the_running_server(serving_root, saved_models):
    """One model server per serving root, like a TF Serving process with a model config: a
    deploy loads the new version into it, whichever model it is; no process starts per deploy."""
    record = server_record(serving_root)
    started = time.monotonic()
    result = serving.deploy(saved_models["b6"], MODEL, INSTANCE)
    print(f"deploy into the running server: {time.monotonic() - started:.2f}s")
    assert server_record(serving_root) == record
    assert (serving_root / ".server" / "process" / "output.log").stat().st_size > 0
    other = serving.deploy(saved_models["b2"], "other", INSTANCE)
    assert server_record(serving_root) == record and other["url"].startswith(result["url"].split("/v1/")[0])


def test_the_server_runs_with_only_the_environment_it_needs(serving_root):
    env = json.loads((serving_root / ".server" / "process" / "launch.json").read_text())["env"]
    assert "TUNE_SERVE_SERVING_ROOT" not in env and "PYTHONPATH" in env


def test_a_dead_server_is_replaced(serving_root, saved_models):
    record = server_record(serving_root)
    result = {"version": stable_version()}
    program = [pid for pid in LocalProcess(serving_root / ".server" / "process").pids() if pid != record["pid"]]
    assert program  # the python server under its shell wrapper

    for pid in program:
        os.kill(pid, signal.SIGKILL)  # the server dies between deployments
    again = serving.deploy(saved_models["b1"], MODEL, INSTANCE)
    assert server_record(serving_root) != record
    assert (again["version"], again["previous_version"]) == (result["version"] + 1, result["version"])
    assert default_score(default_url()) == pytest.approx(BASE_SCORE + 1)


def test_stop_local_server(serving_root):
    assert local.stop_all_local_servers() is True
    assert local.stop_all_local_servers() is False
    with pytest.raises(httpx.TransportError):
        default_score(default_url())
    assert serving.current_model(MODEL)  # the model store outlives the server


def test_a_reused_pid_is_not_taken_for_the_server(tmp_path, monkeypatch):
    """The record's pid now belongs to another process (pids are reused): it is neither
    stopped nor reused as the server; the server is found by pid *and* kernel start ticks."""
    root = tmp_path / "serving"
    monkeypatch.setenv("TUNE_SERVE_SERVING_ROOT", str(root))
    monkeypatch.setenv("TUNE_SERVE_SERVING_PORT", str(free_port()))
    process = LocalProcess.launch(root / ".server" / "process", ["sleep", "60"], {"PATH": os.environ["PATH"]})
    try:
        record = process.record()
        assert local_server._running_server(root.absolute()) is not None
        path = root / ".server" / "process" / "process.json"
        path.write_text(json.dumps({**record, "start_ticks": record["start_ticks"] - 1}))  # another start
        assert local_server._running_server(root.absolute()) is None
        assert local.stop_all_local_servers() is False
        assert local_server.main(["check"]) == 0  # the port is free: nothing of ours, nothing else
        path.write_text(json.dumps(record))
        assert process.running()  # the "stranger" was left alone
    finally:
        process.kill()
