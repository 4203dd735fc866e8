"""The local stand-in for a pod, with real processes."""
import json
import os
import signal
import sys
import time
from types import SimpleNamespace

import pytest

from tune_serve.errors import PodFailed, PodPreempted
from tune_serve.local import backend as local
from tune_serve.local.process import FAILED, KILLED, RUNNING, SUCCEEDED, LocalProcess


def run_python(tmp_path, code, name="p"):
    return LocalProcess.launch(tmp_path / name, [sys.executable, "-c", code], dict(os.environ))


def wait_until(predicate, timeout=20):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


WRITE_RESULT = "import json, os; print('hello'); json.dump({'ok': 1}, open(os.environ['TRAINER_XCOM_FILE'], 'w'))"


def test_success_leaves_its_result_and_output(tmp_path):
    proc = run_python(tmp_path, WRITE_RESULT)
    wait_until(lambda: proc.state() != RUNNING)
    assert proc.state() == SUCCEEDED and proc.result() == {"ok": 1}
    assert proc.read_log(0)[0] == ["hello"]


def test_non_zero_exit_is_a_failure_with_the_programs_reason(tmp_path):
    proc = run_python(tmp_path, "import sys; print('error: --max-trials: must be >= 1', file=sys.stderr); sys.exit(2)")
    wait_until(lambda: proc.state() != RUNNING)
    assert proc.state() == FAILED and proc.exit_code() == 2
    assert proc.reason() == "error: --max-trials: must be >= 1"


def test_a_signal_is_a_preemption_and_the_process_is_found_again_from_its_directory(tmp_path):
    proc = run_python(tmp_path, "import time; print('started', flush=True); time.sleep(60)")
    wait_until(lambda: proc.read_log(0)[0] == ["started"])
    again = LocalProcess(proc.directory)  # another worker, after a restart: no handle on the child
    assert again.state() == RUNNING
    # SIGKILL the program itself (not the wrapper), as the OOM killer or a node loss would.
    child = int(os.popen(f"pgrep -P {again.record()['pid']}").read().split()[0])
    os.kill(child, signal.SIGKILL)
    wait_until(lambda: again.state() != RUNNING)
    assert again.state() == KILLED and again.exit_code() == 128 + signal.SIGKILL


def test_kill_stops_the_whole_group_and_relaunch_restarts_it(tmp_path):
    proc = run_python(tmp_path, "import time; time.sleep(60)")
    proc.kill(signal.SIGTERM, grace_seconds=5)
    assert proc.state() == KILLED
    proc.relaunch()
    assert proc.state() == RUNNING and proc.record()["restarts"] == 1
    proc.kill()


def test_a_reused_pid_is_not_mistaken_for_the_process(tmp_path):
    proc = run_python(tmp_path, WRITE_RESULT)
    wait_until(lambda: proc.state() != RUNNING)
    record = proc.record()
    record["pid"] = os.getpid()  # alive, but started at another time
    (proc.directory / "process.json").write_text(json.dumps(record))
    assert not proc.running()


def make_operator(**kwargs):
    return local.LocalPodOperator(task_id="t", cmds=[sys.executable, "-c"], **kwargs)


def test_operator_maps_exit_states_to_retry_or_fail(tmp_path):
    op = make_operator(poll_seconds=0.05)
    ok = run_python(tmp_path, WRITE_RESULT, "ok")
    op.poll_until_complete(str(ok.directory), {})
    assert op.get_job_result(str(ok.directory), {}) == {"ok": 1}

    bad = run_python(tmp_path, "import sys; print('error: label: column price_k not found'); sys.exit(2)", "bad")
    with pytest.raises(PodFailed, match="exit status 2: error: label: column price_k not found"):
        op.poll_until_complete(str(bad.directory), {})

    killed = run_python(tmp_path, "import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "killed")
    with pytest.raises(PodPreempted):
        op.poll_until_complete(str(killed.directory), {})


def test_operator_deadline_kills_and_fails(tmp_path):
    from datetime import timedelta

    op = make_operator(poll_seconds=0.05, deadline=timedelta(seconds=1))
    slow = run_python(tmp_path, "import time; time.sleep(60)")
    with pytest.raises(PodFailed, match="deadline"):
        op.poll_until_complete(str(slow.directory), {})
    assert slow.state() == KILLED


def test_operator_reattaches_to_a_running_process_instead_of_starting_another(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_LOCAL_STATE_DIR", str(tmp_path / "state"))
    store = {}
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="t", map_index=0, try_number=1, stats_tags={})
    state_store = SimpleNamespace(get=store.get, set=store.__setitem__)
    context = {"ti": ti, "task_state_store": state_store}
    code = "import json, os, time; time.sleep(1.5); json.dump({'pid': os.getpid()}, open(os.environ['TRAINER_XCOM_FILE'], 'w'))"
    first = make_operator(arguments=[code], poll_seconds=0.05)
    directory = first.submit_job(context)
    store[first.external_id_key] = directory       # what execute_resumable persists before polling
    # The worker dies here. The retry (try 2) must re-attach, not start a second process.
    ti.try_number = 2
    second = make_operator(arguments=[code], poll_seconds=0.05)
    result = second.execute(context)
    assert result is not None and "pid" in result
    assert sorted(p.name for p in (local.run_dir("d", "r") / "t.0").iterdir()) == ["try-1"]


def test_a_cleared_task_whose_command_changed_runs_again_instead_of_reusing_the_old_result(tmp_path, monkeypatch):
    """Issue 29: clearing a finished run re-ran evaluate with a new baseline (v1 serving now), but
    the stored job of the first run (judged with nothing serving) succeeded, so its verdict came
    back unchanged. A stored job is reused only when it ran the very same command."""
    monkeypatch.setenv("TUNE_SERVE_LOCAL_STATE_DIR", str(tmp_path / "state"))
    store = {}
    ti = SimpleNamespace(dag_id="d", run_id="r", task_id="evaluate", map_index=0, try_number=1, stats_tags={})
    context = {"ti": ti, "task_state_store": SimpleNamespace(get=store.get, set=store.__setitem__)}
    code = "import json, os, sys; json.dump({'argv': sys.argv[1:]}, open(os.environ['TRAINER_XCOM_FILE'], 'w'))"
    assert make_operator(arguments=[code, "--baseline-model-path", ""], poll_seconds=0.05).execute(context) == {
        "argv": ["--baseline-model-path", ""]}
    ti.try_number = 2  # the run cleared: same command, the stored result stands
    assert make_operator(arguments=[code, "--baseline-model-path", ""], poll_seconds=0.05).execute(context) == {
        "argv": ["--baseline-model-path", ""]}
    assert sorted(p.name for p in (local.run_dir("d", "r") / "evaluate.0").iterdir()) == ["try-1"]
    ti.try_number = 3  # cleared again once v1 serves: the evaluation runs against it
    again = make_operator(arguments=[code, "--baseline-model-path", "/serving/m/1"], poll_seconds=0.05)
    assert again.execute(context) == {"argv": ["--baseline-model-path", "/serving/m/1"]}


def _start_chief(run_id):
    # a stand-in chief: the flags the plan adds land in its sys.argv
    start = local.LocalStartOracleOperator(task_id="start_oracle", cmds=[sys.executable, "-c", "import time; time.sleep(60)"],
                                   oracle_args={"run_root": f"/tmp/runs/{run_id}"})
    ti = SimpleNamespace(dag_id="d", run_id=run_id, task_id="tuning.start_oracle", map_index=-1, try_number=1)
    return start.execute({"ti": ti, "run_id": run_id, "dag": SimpleNamespace(dag_id="d")})


def test_run_ids_alike_once_cleaned_get_their_own_state_and_their_own_chief(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_LOCAL_STATE_DIR", str(tmp_path / "state"))
    assert local.run_dir("d", "a:b") != local.run_dir("d", "a_b")
    handles = []
    try:
        handles = [_start_chief("a:b"), _start_chief("a_b")]  # the second must not re-attach to the first
        assert handles[0]["directory"] != handles[1]["directory"]
        assert handles[0]["address"] != handles[1]["address"]
        assert _start_chief("a:b") == handles[0]  # a retry of the same run does re-attach
    finally:
        for handle in handles:
            LocalProcess(local.Path(handle["directory"])).kill()


def test_a_chief_recorded_for_another_run_is_not_reattached(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNE_SERVE_LOCAL_STATE_DIR", str(tmp_path / "state"))
    first = _start_chief("run-1")
    try:
        # Whatever puts another run's chief where this run looks (a copied or forged folder):
        directory = local.Path(first["directory"])
        (directory / "run_id").write_text("run-0")
        with pytest.raises(PodFailed, match="belongs to run 'run-0'"):
            _start_chief("run-1")
    finally:
        LocalProcess(local.Path(first["directory"])).kill()


# -- the chief's wait: deferred to the triggerer ---------------------------------------------------

def _first_event(trigger):
    import asyncio

    async def first():
        async for event in trigger.run():
            return event.payload
    return asyncio.run(asyncio.wait_for(first(), 30))


def test_trigger_fires_when_the_process_ends_however_it_ends(tmp_path):
    from tune_serve.local.trigger import LocalProcessTrigger

    ok = run_python(tmp_path, "import time; print('trial 1 ended'); time.sleep(0.5)", "ok")
    event = _first_event(LocalProcessTrigger(str(ok.directory), poll_seconds=0.05))
    assert event["state"] == SUCCEEDED and event["log_offset"] == len("trial 1 ended\n")

    killed = run_python(tmp_path, "import os, signal, time; time.sleep(0.3); os.kill(os.getpid(), signal.SIGKILL)", "k")
    assert _first_event(LocalProcessTrigger(str(killed.directory), poll_seconds=0.05))["state"] == KILLED

    path, kwargs = LocalProcessTrigger(str(ok.directory), 2.0, 14).serialize()
    assert path == "tune_serve.local.trigger.LocalProcessTrigger"
    assert kwargs == {"directory": str(ok.directory), "poll_seconds": 2.0, "log_offset": 14}


def _wait(**kwargs):
    from datetime import timedelta

    return local.LocalWaitOracleOperator(**{"task_id": "wait_oracle", "deadline": timedelta(hours=1), **kwargs})


def test_wait_defers_while_running_and_restarts_a_killed_chief(tmp_path):
    from airflow.sdk.exceptions import TaskDeferred

    chief = run_python(tmp_path, "import time; time.sleep(30)", "chief")
    wait = _wait(handle={"directory": str(chief.directory)}, max_restarts=1)
    with pytest.raises(TaskDeferred) as deferred:
        wait.execute({})
    assert deferred.value.method_name == "execute_complete"
    assert deferred.value.trigger.directory == str(chief.directory)

    chief.kill(signal.SIGKILL)
    with pytest.raises(TaskDeferred):  # restarted like a Job's pod, then waited for again
        wait.execute_complete({}, {"state": KILLED, "log_offset": 0})
    assert chief.record()["restarts"] == 1 and chief.state() == RUNNING

    chief.kill(signal.SIGKILL)
    with pytest.raises(PodFailed, match="killed 2 times"):
        wait.execute_complete({}, {"state": KILLED, "log_offset": 0})


def test_wait_returns_the_chiefs_result_or_its_failure(tmp_path):
    ok = run_python(tmp_path, WRITE_RESULT, "ok")
    wait_until(lambda: ok.state() == SUCCEEDED)
    assert _wait(handle={"directory": str(ok.directory)}).execute_complete({}, {"state": SUCCEEDED,
                                                                              "log_offset": 0}) == {"ok": 1}
    bad = run_python(tmp_path, "import sys; print('error: search_space: empty'); sys.exit(2)", "bad")
    wait_until(lambda: bad.state() == FAILED)
    with pytest.raises(PodFailed, match="exit status 2: error: search_space: empty"):
        _wait(handle={"directory": str(bad.directory)}).execute({})


def test_wait_gives_up_at_the_deadline_counted_from_the_first_launch(tmp_path):
    from datetime import timedelta

    chief = LocalProcess.launch(tmp_path / "c", [sys.executable, "-c", "import time; time.sleep(30)"],
                                dict(os.environ))
    try:
        spec = chief.launch_spec()
        spec["launched_at"] -= 3 * 3600  # launched three hours ago
        (chief.directory / "launch.json").write_text(json.dumps(spec))
        chief.kill(signal.SIGKILL)
        wait_until(lambda: chief.state() == KILLED)
        chief.relaunch()  # a restart does not restart the clock
        assert chief.launched_at() == spec["launched_at"]
        wait = _wait(handle={"directory": str(chief.directory)}, deadline=timedelta(hours=2, minutes=15))
        with pytest.raises(PodFailed, match="still running 2:15:00 after its launch"):
            wait.execute({})
    finally:
        chief.kill(signal.SIGKILL)


def test_the_chief_and_the_tuners_share_a_secret_only_the_user_can_read(tmp_path, monkeypatch):
    import stat

    from tune_serve.workflow.podspec import PodTask

    monkeypatch.setenv("TUNE_SERVE_LOCAL_STATE_DIR", str(tmp_path / "state"))
    handle = _start_chief("r1")
    try:
        secret = local.search_secret_file("d", "r1")
        token = secret.read_text()
        assert len(token) >= 32 and stat.S_IMODE(secret.stat().st_mode) == 0o600
        chief = LocalProcess(local.Path(handle["directory"]))
        assert chief.launch_spec()["env"]["KERASTUNER_ORACLE_SECRET_FILE"] == str(secret)
        assert token not in (local.Path(handle["directory"]) / "launch.json").read_text()
        _start_chief("r1")  # a retry re-attaches and keeps the secret
        assert secret.read_text() == token
    finally:
        LocalProcess(local.Path(handle["directory"])).kill()

    ti = SimpleNamespace(dag_id="d", run_id="r1", task_id="tuning.tune", map_index=0, try_number=1)
    context = {"ti": ti}
    tuner = local.mapped_pod_operator(PodTask("tune", "tune")).expand(arguments=[["x"]])
    operator = local.LocalPodOperator(task_id="tune", cmds=[sys.executable, "-c", "pass"], search_secret=True)
    directory = operator.submit_job(context)
    assert LocalProcess(local.Path(directory)).launch_spec()["env"]["KERASTUNER_ORACLE_SECRET_FILE"] == str(secret)
    assert tuner.partial_kwargs["search_secret"] is True
    other = local.LocalPodOperator(task_id="train", cmds=[sys.executable, "-c", "pass"])
    ti.task_id = "training.train"
    assert "KERASTUNER_ORACLE_SECRET_FILE" not in LocalProcess(local.Path(other.submit_job(context))).launch_spec()["env"]

    local.LocalStopOracleOperator(task_id="stop_oracle", handle=handle).execute(context)
    assert not secret.exists()


def test_a_local_pod_reaches_google_cloud_as_the_worker_does_and_gets_nothing_else(monkeypatch):
    """Issue 26: a pod on a cluster has its service account; a local process gets the worker's
    Google variables (without them TF on gs:// sat in the GCE metadata server's retries), and
    never the worker's other settings or secrets."""
    from tune_serve.local.process import inherited_env

    google = {"GOOGLE_APPLICATION_CREDENTIALS": "/secrets/sa.json", "GOOGLE_CLOUD_PROJECT": "p",
              "STORAGE_EMULATOR_HOST": "http://127.0.0.1:4443", "CURL_CA_BUNDLE": "/tmp/ca.pem",
              "GOOGLE_AUTH_TOKEN_FOR_TESTING": "t", "NO_GCE_CHECK": "true",
              "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    for name, value in {**google, "AIRFLOW__API_AUTH__JWT_SECRET": "s", "TUNE_SERVE_STORAGE_ROOT": "/x"}.items():
        monkeypatch.setenv(name, value)
    env = inherited_env(PYTHONPATH="/p")
    assert google.items() <= env.items()
    assert "AIRFLOW__API_AUTH__JWT_SECRET" not in env and "TUNE_SERVE_STORAGE_ROOT" not in env
