"""Case 5: the scheduler killed mid-run, with its LocalExecutor workers and the task processes they
supervise (SIGKILL to the scheduler's whole session, as when its machine dies), then started
again with `scripts/airflow-stack.sh start`.

The local pods (tuners, chief) live in sessions of their own, like pods on other nodes, and keep
running. The new scheduler resets the orphaned task instances; their next try must re-attach to
the pod the first try started (ResumableJobMixin: the pod's directory is in the task's state
store) instead of starting a second one. Runs last and alone: the kill hits every run in flight.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from chaos_helpers import (
    SLEEP,
    LocalProcess,
    Pods,
    Run,
    iso_seconds,
    kill_session,
    oracle_state,
    read_json,
    trial_records,
    wait_for,
)

pytestmark = pytest.mark.chaos


class LiveCounter(threading.Thread):
    """Samples, every 0.2 s, how many live processes each task of the run has."""

    def __init__(self, pods: Pods, run_id: str):
        super().__init__(daemon=True)
        self.pods, self.run_id = pods, run_id
        self.most: dict[str, int] = {}
        self.samples = 0
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.2):
            for task, count in self.pods.live_by_task(self.run_id).items():
                self.most[task] = max(self.most.get(task, 0), count)
            self.samples += 1

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=10)


@pytest.fixture(scope="module")
def killed(stack):
    run = Run(stack.client, "sleep-scheduler-killed", SLEEP)
    root = stack.run_root(run.run_id)
    counter = LiveCounter(stack.pods, run.run_id)
    counter.start()

    def moment():  # both tuner tasks running, each pod holding a trial
        tis = run.tis()
        tuners = [tis.get(("tuning.tune", i)) for i in range(SLEEP["num_tuners"])]
        return all(t and t["state"] == "running" for t in tuners) and \
            len(oracle_state(root).get("ongoing_trials") or {}) == SLEEP["num_tuners"]

    wait_for(moment, 900, "both tuners running a trial", interval=0.5)
    scheduler = stack.component_pid("scheduler")
    pids = kill_session(scheduler)
    killed_at = time.time()
    # Until they are reaped: `airflow-stack.sh start` takes a zombie for a running scheduler (kill -0).
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in pids), 60, "the killed processes to be gone",
             interval=0.1)
    stack.start()  # starts what is missing: the scheduler
    restarted_at = time.time()
    try:
        run.wait(timeout=900)
    finally:
        counter.stop()
    return {"run": run, "killed_pids": pids, "scheduler": scheduler, "killed_at": killed_at,
            "restarted_at": restarted_at, "most": counter.most, "samples": counter.samples}


def test_scheduler_killed_mid_run(stack, killed, results):
    run = killed["run"]
    root = stack.run_root(run.run_id)
    with results.fault(5, "scheduler and its workers SIGKILLed mid-run, then restarted", run.run_id,
                       injected={k: killed[k] for k in ("scheduler", "killed_pids", "killed_at", "restarted_at")}) \
            as record:
        completed = [t for t in trial_records(root).values() if t["status"] == "COMPLETED"]
        record["lost"]["trials"] = run.conf["max_trials"] - len(completed)
        resumed_tries = []
        for i in range(run.conf["num_tuners"]):
            ti = run.ti("tuning.tune", i)
            resumed_tries.append(iso_seconds(ti["start_date"]))
        first_pod_ends = [(stack.pods.try_dir(run.run_id, "tuning.tune", i, 1) / "exit_status").stat().st_mtime
                          for i in range(run.conf["num_tuners"])]
        task_ends = [iso_seconds(run.ti("tuning.tune", i)["end_date"]) for i in range(run.conf["num_tuners"])]
        record["cost"] = {
            # The pods never stopped: the run is late only by how long after its pods ended a task noticed.
            "extra_run_seconds": round(max(0.0, max(t - e for t, e in zip(task_ends, first_pod_ends))), 1),
            "scheduler_down_seconds": round(killed["restarted_at"] - killed["killed_at"], 1),
            "seconds_to_reattach": round(max(resumed_tries) - killed["killed_at"], 1),
            "reattached_to_running_pods": sum(s < e for s, e in zip(resumed_tries, first_pod_ends)),
            "epochs_rerun": 0}
        assert killed["scheduler"] in killed["killed_pids"] and len(killed["killed_pids"]) > 1  # with its workers
        assert run.state == "success"
        assert killed["samples"] > 10
        assert max(killed["most"].values()) == 1, f"a task had two live pods at once: {killed['most']}"
        for i in range(run.conf["num_tuners"]):
            ti = run.ti("tuning.tune", i)
            assert ti["try_number"] >= 2, "the tuner's task was not reset and run again after the kill"
            tries = stack.pods.tries(run.run_id, "tuning.tune", i)
            assert [p.name for p in tries] == ["try-1"], f"a second pod was started: {tries}"
            assert LocalProcess(tries[0]).state() == "succeeded"
            assert run.xcom("tuning.tune", i) == read_json(tries[0] / "return.json")  # the first pod's result
        chief = LocalProcess(stack.pods.chief(run.run_id))
        assert chief.record()["restarts"] == 0 and chief.state() == "succeeded"
        oracle = oracle_state(root)
        assert len(completed) == run.conf["max_trials"]
        assert sorted(oracle["end_order"]) == sorted(set(oracle["end_order"])) == sorted(trial_records(root))
        assert set(oracle["run_times"].values()) == {1} and oracle["leases"]["lost_tuners"] == []
        assert not stack.pods.live_by_task(run.run_id)  # nothing of the run is left running
