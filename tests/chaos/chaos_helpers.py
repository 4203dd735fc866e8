"""What the fault-injection tests share: waiting on stored state, finding and killing the local
"pods" of a run, the scheduler's session, a prediction stream, and the results file."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from tune_serve.local.backend import run_folder
from tune_serve.local.process import LocalProcess

REPO = Path(__file__).resolve().parents[2]
TRAINER_PY = REPO / ".venv" / "trainer" / "bin" / "python"
DAG_ID = "tune_train_serve"

# Tiny runs. KERAS trains the real model (epoch resume needs it); SLEEP tunes the `sleep`
# benchmark objective: fixed-length epochs, so the moment of a fault is easy to hit.
KERAS = {
    "source": "diamonds", "sample_rows": 1500, "algorithm": "random", "max_trials": 4, "num_tuners": 2,
    "tuning_epochs": 3, "top_n": 2, "training_epochs": 3, "early_stopping_patience": 2,
    "mae_upper_bound": 100000.0, "max_mae_increase": None,  # no baseline gate: both runs of a pair ship
}
# the model contract's shipped example, for the runs whose faults test the guarantees (resume,
# checkpoints, deploy, rollback) with a user model
USER_MODEL = "tune_serve_models.wide_and_deep:build"
MAIN_MODEL = "chaos-main"  # the model the pair of case 8 deploys, and case 6 redeploys
SLEEP = {
    "objective_function": "sleep", "trial_sleep_seconds": 4, "algorithm": "random", "max_trials": 6,
    "num_tuners": 2, "tuning_epochs": 3, "top_n": 1, "model_name": "chaos-sleep",
}


# ---- waiting -------------------------------------------------------------------------------

def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy (returned); TimeoutError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"not within {timeout:.0f}s: {what}")


def read_json(path: Path) -> Any:
    """A JSON file's content, or None while it is missing or half-written."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


def iso_seconds(value: str | None) -> float | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


# ---- runs through the REST API -----------------------------------------------------------------

def _retrying(call: Callable[[], Any], attempts: int = 8) -> Any:
    """The local Airflow runs on SQLite: under load a request can fail with a 500 ("database is
    locked") and nothing done. Retry those; any other error is the answer."""
    import httpx

    for attempt in range(attempts):
        try:
            return call()
        except (httpx.TransportError, httpx.HTTPStatusError, ValueError) as exc:
            transient = isinstance(exc, httpx.TransportError) or " (500)" in str(exc) or \
                (isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500)
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(1 + attempt)


def trigger(client, conf: dict, run_id: str) -> str:
    attempts = []

    def once():
        attempts.append(1)
        try:
            return client.trigger(conf, run_id=run_id)
        except ValueError as exc:
            if len(attempts) > 1 and " (409)" in str(exc):  # an earlier attempt did create it
                return run_id
            raise
    return _retrying(once)


def dag_run(client, run_id: str) -> dict:
    return _retrying(lambda: client.dag_run(run_id, DAG_ID))


def wait_run(client, run_id: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = dag_run(client, run_id)["state"]
        if state in ("success", "failed"):
            return state
        time.sleep(2)
    raise TimeoutError(f"run {run_id} not finished after {timeout:.0f}s")


def task_instances(client, run_id: str) -> list[dict]:
    return _retrying(lambda: client.task_instances(run_id, DAG_ID))


class Run:
    """One triggered run and what happened to it (filled in by injectors and tests)."""

    def __init__(self, client, run_id: str, conf: dict):
        self.client, self.run_id, self.conf = client, run_id, conf
        self.triggered_at = time.time()
        trigger(client, conf, run_id)
        self.state: str | None = None
        self.refusal: dict | None = None  # its deploy's refusal of a stale verdict, before a re-judge (case 8)
        self.faults: list[dict] = []  # what each injector did, with the state it saw
        self.errors: list[str] = []   # injectors that could not inject (the tests fail on these)

    def wait(self, timeout: float = 1200) -> str:
        self.state = wait_run(self.client, self.run_id, timeout)
        return self.state

    def tis(self) -> dict[tuple[str, int], dict]:
        return {(t["task_id"], t["map_index"]): t for t in task_instances(self.client, self.run_id)}

    def ti(self, task_id: str, map_index: int = -1) -> dict | None:
        return self.tis().get((task_id, map_index))

    def xcom(self, task_id: str, map_index: int = -1):
        return _retrying(lambda: self.client.xcom(self.run_id, task_id, map_index))

    def wall_seconds(self) -> float:
        run = dag_run(self.client, self.run_id)
        return iso_seconds(run["end_date"]) - iso_seconds(run["start_date"])

    def search_seconds(self) -> float:
        """From the chief's start to the end of the wait for it: the search's wall time."""
        tis = self.tis()
        return iso_seconds(tis[("tuning.wait_oracle", -1)]["end_date"]) - \
            iso_seconds(tis[("tuning.start_oracle", -1)]["start_date"])

    def task_seconds(self, task_id: str, map_index: int = -1) -> float:
        """From the first try's start to the last try's end (retries and their delays included)."""
        tries = self.tries(task_id, map_index)
        return max(iso_seconds(t["end_date"]) for t in tries if t["end_date"]) - \
            min(iso_seconds(t["start_date"]) for t in tries if t["start_date"])

    def tries(self, task_id: str, map_index: int = -1) -> list[dict]:
        """Every try of a task instance (the task instance history plus the current try)."""
        return _retrying(lambda: self.client.task_tries(self.run_id, task_id, map_index, DAG_ID))

    def injector(self, name: str, body: Callable[[Run], None]) -> threading.Thread:
        """Run `body(self)` in a thread; what it raises becomes an error of this run."""
        def target():
            try:
                body(self)
            except Exception as exc:  # noqa: BLE001 - reported by the test that owns the run
                self.errors.append(f"{name}: {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
        thread = threading.Thread(target=target, name=f"{self.run_id}:{name}", daemon=True)
        thread.start()
        return thread

    def assert_no_injector_errors(self) -> None:
        assert not self.errors, "\n".join(self.errors)


# ---- the local "pods" of a run ---------------------------------------------------------------

class Pods:
    """The local backend's process directories: {root}/{dag_id}/{run folder}/{task}[.{index}]/try-{n}/
    (the run folder as tune_serve.local.backend.run_folder names it)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def task_dir(self, run_id: str, task_id: str, map_index: int = -1) -> Path:
        name = task_id + (f".{map_index}" if map_index >= 0 else "")
        return self.root / DAG_ID / run_folder(run_id) / name

    def tries(self, run_id: str, task_id: str, map_index: int = -1) -> list[Path]:
        directory = self.task_dir(run_id, task_id, map_index)
        found = [p for p in directory.glob("try-*") if (p / "process.json").exists()] if directory.exists() else []
        return sorted(found, key=lambda p: int(p.name.split("-")[1]))

    def try_dir(self, run_id: str, task_id: str, map_index: int, try_number: int) -> Path:
        return self.task_dir(run_id, task_id, map_index) / f"try-{try_number}"

    def chief(self, run_id: str) -> Path:
        return self.task_dir(run_id, "tuning.start_oracle") / "chief"

    @staticmethod
    def running(directory: Path) -> bool:
        return (directory / "process.json").exists() and LocalProcess(directory).running()

    def live_by_task(self, run_id: str) -> dict[str, int]:
        """Live processes per task directory of a run (a duplicate shows as 2)."""
        run_dir = self.root / DAG_ID / run_folder(run_id)
        counts: dict[str, int] = {}
        for record in run_dir.glob("*/*/process.json"):
            if LocalProcess(record.parent).running():
                counts[record.parent.parent.name] = counts.get(record.parent.parent.name, 0) + 1
        return counts

    def all_live(self) -> list[Path]:
        return [p.parent for p in self.root.glob(f"{DAG_ID}/*/*/*/process.json") if LocalProcess(p.parent).running()]


def program_pid(directory: Path) -> int | None:
    """The trainer program: the child of the /bin/sh wrapper whose pid process.json records."""
    wrapper = LocalProcess(directory).record()["pid"]
    try:
        children = Path(f"/proc/{wrapper}/task/{wrapper}/children").read_text().split()
    except OSError:
        return None
    return int(children[0]) if children else None


def kill_pod(directory: Path, *, whole_group: bool) -> dict:
    """SIGKILL a local pod. whole_group: the wrapper and the program at once, as when a node goes
    away (no exit status is written); otherwise the program alone, as the OOM killer does (the
    wrapper records 137). Returns when it is dead."""
    process = LocalProcess(directory)
    if whole_group:
        os.killpg(process.record()["pid"], signal.SIGKILL)
    else:
        pid = wait_for(lambda: program_pid(directory), 30, f"the program under {directory}")
        os.kill(pid, signal.SIGKILL)
    wait_for(lambda: not process.running(), 30, f"{directory} to die", interval=0.05)
    return {"at": time.time(), "directory": str(directory), "signal": "SIGKILL",
            "target": "process group" if whole_group else "program"}


def kill_session(leader_pid: int) -> list[int]:
    """SIGKILL every process in the session `leader_pid` leads (a component started with setsid:
    the scheduler with its LocalExecutor workers and the task processes they supervise; the
    local pods are not in it, they start sessions of their own)."""
    killed = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == leader_pid:  # field 6 of /proc/pid/stat: session id
            try:
                os.kill(int(proc.name), signal.SIGKILL)
                killed.append(int(proc.name))
            except ProcessLookupError:
                pass
    return killed


def kill_leftovers(pods: Pods) -> list[str]:
    """Finalizer: no local pod of ours outlives the suite."""
    left = []
    for directory in pods.all_live():
        LocalProcess(directory).kill(signal.SIGKILL, grace_seconds=5)
        left.append(str(directory))
    return left


# ---- stored state ------------------------------------------------------------------------------

def tree(root: str | Path) -> dict[str, Any]:
    """Every file (with its size) and directory under root: the fingerprint of stored state."""
    root = Path(root)
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): ("dir" if p.is_dir() else p.stat().st_size) for p in sorted(root.rglob("*"))}


def oracle_state(run_root: Path) -> dict:
    return read_json(run_root / "tuning" / "oracle.json") or {}


def trial_records(run_root: Path) -> dict[str, dict]:
    """The oracle's own record of every trial (tuning/trial_*/trial.json)."""
    records = {}
    for path in (run_root / "tuning").glob("trial_*/trial.json"):
        record = read_json(path)
        records[record["trial_id"]] = record
    return records


def saved_model_complete(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() and (path / "variables" / "variables.index").is_file() \
        and any((path / "variables").glob("variables.data-*"))


# ---- serving -----------------------------------------------------------------------------------

def serving_port(serving_root: Path, model_name: str) -> int | None:
    """The port of the serving root's model server (one server serves every model)."""
    record = read_json(serving_root / ".server" / "server.json")
    return record["port"] if record else None


def labels(serving_root: Path, model_name: str) -> dict[str, int]:
    record = read_json(serving_root / f"{model_name}.config.json")
    return {k: int(v) for k, v in (record or {}).get("version_labels", {}).items()}


class PredictionStream(threading.Thread):
    """A client predicting without pause on the model's default route, as traffic would."""

    def __init__(self, base_url: str, model_name: str, instance: dict):
        super().__init__(daemon=True, name=f"stream:{model_name}")
        from tune_serve.serving.rest_client import TFServingREST

        self.server = TFServingREST(base_url, model_name, timeout=30)
        self.rows = [instance]
        self.responses: list[tuple[float, bool, Any]] = []  # (sent at, ok, prediction or error)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            sent = time.time()  # when the request left: one sent after a switch must get the new version
            try:
                response = self.server.predict(self.rows)
                ok = response.status_code == 200
                value = response.json()["predictions"][0] if ok else \
                    f"HTTP {response.status_code}: {response.text[:200]}"
            except Exception as exc:  # noqa: BLE001 - a failed request is what we count
                ok, value = False, f"{type(exc).__name__}: {exc}"
            self.responses.append((sent, ok, value))
            time.sleep(0.05)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=60)
        self.server.close()

    @property
    def errors(self) -> list:
        return [r for r in self.responses if not r[1]]


def version_prediction(base_url: str, model_name: str, version: int, instance: dict):
    from tune_serve.serving.rest_client import TFServingREST

    with TFServingREST(base_url, model_name) as server:
        response = server.predict([instance], version=version)
        response.raise_for_status()
        return response.json()["predictions"][0]


def run_trainer_script(code: str, *args: str, timeout: float = 300) -> str:
    """Python in the trainer environment (TensorFlow lives there, never in this process)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "include" / "trainer"), "TF_CPP_MIN_LOG_LEVEL": "2"}
    out = subprocess.run([str(TRAINER_PY), "-c", code, *args], capture_output=True, text=True, env=env,
                         timeout=timeout)
    if out.returncode != 0:
        raise RuntimeError(f"trainer script failed ({out.returncode}):\n{out.stderr[-2000:]}")
    return out.stdout


# ---- results -----------------------------------------------------------------------------------

class Results:
    """One JSON line per injected fault: what, when, whether it was survived, what was lost, and
    what it cost. tests/chaos/summary.py turns the file into the suite's last line."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")

    def add(self, record: dict) -> None:
        with open(self.path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(json.dumps(record, default=str) + "\n")

    @contextmanager
    def fault(self, case: int, fault: str, run_id: str | None = None, **facts):
        """Record a fault around the checks of its outcome: survived only if they all pass.
        The body fills `record["lost"]` (from stored state) and `record["cost"]`."""
        record = {"case": case, "fault": fault, "run_id": run_id, **facts,
                  "lost": {"trials": 0, "models": 0, "served_versions": 0}, "cost": {}}
        try:
            yield record
        except BaseException as exc:
            record["survived"] = False
            record["error"] = f"{type(exc).__name__}: {str(exc)[:500]}"
            self.add(record)
            raise
        record["survived"] = True
        self.add(record)
