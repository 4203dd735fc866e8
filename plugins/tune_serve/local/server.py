"""The local TF Serving stand-in as a detached process, one per model.

Each model gets its own server, as it gets its own Deployment on Kubernetes: the first
model of a serving root listens on `serving_port`, each further model on the next free
port; the port is remembered in `{serving_root}/.server/{name}.port`.

`python -m tf_serving_rest` runs in the serving environment (TensorFlow lives there, never
here) with PYTHONPATH=include/serving. It outlives the task that started it: later
deployments reuse it, found through its pid file `{serving_root}/.server/{name}.pid`; its log
is `{serving_root}/.server/{name}.log`.
"""
from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

import httpx
import psutil

from tune_serve import config
from tune_serve.local.model_store import ModelStore
from tune_serve.local.ports import is_free
from tune_serve.local.process import spawn_detached
from tune_serve.serving.errors import ServingUnavailable

HOST = "127.0.0.1"
SERVER_MODULE = "tf_serving_rest"
REUSE_GRACE_SECONDS = 10


def port() -> int:
    return int(config.setting("serving_port", "8501"))


def base_url(port_: int | None = None) -> str:
    return f"http://{HOST}:{port_ or port()}"


def model_port(store: ModelStore) -> int:
    """This model's port: remembered, or allocated under a lock shared by every model."""
    store.state_dir.mkdir(parents=True, exist_ok=True)
    record = store.state_dir / f"{store.model_name}.port"
    configured = port()
    with open(store.state_dir / "ports.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            known = json.loads(record.read_text())
            if known["configured"] == configured:
                return known["port"]
        except (OSError, ValueError, KeyError):
            pass
        taken = set()
        for other in store.state_dir.glob("*.port"):
            if other != record:
                try:
                    taken.add(json.loads(other.read_text())["port"])
                except (OSError, ValueError, KeyError):
                    pass
        candidate = configured
        while candidate in taken or not is_free(candidate):
            candidate += 1
        record.write_text(json.dumps({"configured": configured, "port": candidate}))
        return candidate


def ensure_running(store: ModelStore, timeout: float) -> str:
    """Base URL of a live server for this model on its port, started if need be.

    Call with the model's lock held, so two deployments never start two servers.
    """
    process = _running_server(store)
    wanted_port = model_port(store)
    if process is not None and _port_of(process) == wanted_port:
        deadline = time.monotonic() + REUSE_GRACE_SECONDS  # busy is not dead: give it a moment
        while time.monotonic() < deadline:
            if _serving(process.pid, wanted_port):
                return base_url(wanted_port)
            time.sleep(0.5)
    if process is not None:  # stale: the port setting changed, or it stopped answering
        _terminate(process)
    return _start(store, wanted_port, timeout)


def stop(store: ModelStore, timeout: float = 30) -> bool:
    """Stop this model's server if it runs. True if there was one."""
    process = _running_server(store)
    _pid_file(store).unlink(missing_ok=True)
    if process is None:
        return False
    _terminate(process, timeout)
    return True


def models_with_pid_files(serving_root: str | Path) -> list[str]:
    return sorted(p.stem for p in (Path(serving_root) / ".server").glob("*.pid"))


def log_path(store: ModelStore) -> Path:
    return store.state_dir / f"{store.model_name}.log"


def _pid_file(store: ModelStore) -> Path:
    return store.state_dir / f"{store.model_name}.pid"


def _start(store: ModelStore, port_: int, timeout: float) -> str:
    python = config.serving_python()
    if not Path(python).exists():
        raise ServingUnavailable(f"no serving environment at {python}: run `make envs` "
                                 "(or set TUNE_SERVE_SERVING_PYTHON)")
    store.state_dir.mkdir(parents=True, exist_ok=True)
    store.base_path.mkdir(parents=True, exist_ok=True)
    command = [python, "-m", SERVER_MODULE, "--model-name", store.model_name,
               "--model-base-path", str(store.base_path), "--model-config-file", str(store.config_path),
               "--port", str(port_), "--host", HOST]
    env = dict(os.environ, PYTHONPATH=str(config.REPO_ROOT / "include" / "serving"), TF_CPP_MIN_LOG_LEVEL="2")
    process = spawn_detached(command, env, log_path(store), store.root)  # outlives the task
    _pid_file(store).write_text(f"{process.pid}\n")
    url = base_url(port_)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            _pid_file(store).unlink(missing_ok=True)
            raise ServingUnavailable(f"the {store.model_name} server exited with {process.returncode} on start; "
                                     f"log {log_path(store)}:\n{_tail(log_path(store))}")
        if _serving(process.pid, port_):
            return url
        time.sleep(0.25)
    _terminate(psutil.Process(process.pid))
    _pid_file(store).unlink(missing_ok=True)
    raise ServingUnavailable(f"the {store.model_name} server did not answer on {url} within {timeout:.0f}s; "
                             f"log {log_path(store)}:\n{_tail(log_path(store))}")


def _running_server(store: ModelStore) -> psutil.Process | None:
    """The process in the pid file, if it is still our server for this model (pids get reused)."""
    try:
        process = psutil.Process(int(_pid_file(store).read_text()))
        command = process.cmdline()
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
    except (FileNotFoundError, ValueError, psutil.Error):
        return None
    ours = SERVER_MODULE in command and _flag(command, "--model-base-path") == str(store.base_path)
    return process if ours else None


def _port_of(process: psutil.Process) -> int | None:
    try:
        return int(_flag(process.cmdline(), "--port") or "")
    except (TypeError, ValueError, psutil.Error):
        return None


def _serving(pid: int, port_: int) -> bool:
    """`pid` listens on the port and answers there (another process may hold the port)."""
    return _listens(pid, port_) and _is_live(base_url(port_))


def _listens(pid: int, port_: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port_
                   for c in psutil.Process(pid).net_connections(kind="tcp"))
    except psutil.Error:
        return False


def _flag(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command[:-1] else None


def _is_live(url: str) -> bool:
    try:
        return httpx.get(f"{url}/", timeout=2).status_code == 200  # KServe's liveness route
    except httpx.TransportError:
        return False


def _terminate(process: psutil.Process, timeout: float = 30) -> None:
    try:
        process.terminate()
        process.wait(timeout)  # also reaps it when it is our child
    except psutil.TimeoutExpired:
        process.kill()
        process.wait(10)
    except psutil.NoSuchProcess:
        pass


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
