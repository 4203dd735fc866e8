"""The local TF Serving stand-in as one detached process per serving root.

Like one TF Serving process started with a model config file, it serves every model of the
serving root (`{serving_root}/{name}.config.json` lists a model, `{serving_root}/{name}/` holds
its versions) on `serving_port`, and picks up new models and versions by polling. A deploy
therefore never starts a process: it puts the version in place and the running server loads
it. `scripts/airflow-stack.sh start` starts it with Airflow (`python -m
tune_serve.local.server start`); a deploy starts it only if it is not running.

`python -m tf_serving_rest` runs in the serving environment (TensorFlow lives there, never
here) with PYTHONPATH=include/serving, supervised like a local pod by `LocalProcess` in
`{serving_root}/.server/process/` (pid and kernel start ticks, so a reused pid is never taken
for it; its log is `process/output.log`; stopping it stops its whole process group). What it
serves is `{serving_root}/.server/server.json` (`{"port", "instance_id"}`). Each start gets a
fresh instance id that the server echoes on `GET /tf-serving-rest/instance`: a server is ours
only if a process of its group listens on the port and answers with that id, so another process
holding the port (an older server, another user's) is never mistaken for it.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import secrets
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil

from tune_serve import config
from tune_serve.local.model_store import ModelStore
from tune_serve.local.ports import is_free
from tune_serve.local.process import LocalProcess, inherited_env
from tune_serve.serving.errors import ServingUnavailable

HOST = "127.0.0.1"
SERVER_MODULE = "tf_serving_rest"
REUSE_GRACE_SECONDS = 10
# How often the server re-reads the serving root: a new version is picked up within this.
POLL_SECONDS = "0.25"
START_TIMEOUT_SECONDS = 180  # imports TensorFlow and KServe
PORT_RELEASE_SECONDS = 10


def port() -> int:
    return int(config.setting("serving_port", "8501"))


def base_url(port_: int | None = None) -> str:
    return f"http://{HOST}:{port_ or port()}"


def state_dir(serving_root: str | Path) -> Path:
    return Path(serving_root).absolute() / ".server"


def process_dir(serving_root: str | Path) -> Path:
    return state_dir(serving_root) / "process"


def log_path(serving_root: str | Path) -> Path:
    return LocalProcess(process_dir(serving_root)).log_file


def ensure_running(store: ModelStore, timeout: float) -> str:
    """Base URL of this serving root's live server, started if need be."""
    return ensure_root_server(store.root, timeout)


def ensure_root_server(serving_root: str | Path, timeout: float = START_TIMEOUT_SECONDS) -> str:
    root = Path(serving_root).absolute()
    wanted_port = port()
    with _start_lock(root):  # two deploys (or a deploy and `start`) never start two servers
        record = _record(root)
        process = _running_server(root)
        if process is not None and record.get("port") == wanted_port:
            deadline = time.monotonic() + REUSE_GRACE_SECONDS  # busy is not dead: give it a moment
            while time.monotonic() < deadline:
                if _ours_answering(process, wanted_port, record.get("instance_id")):
                    return base_url(wanted_port)
                time.sleep(0.5)
        if process is not None:  # stale: the port setting changed, or it stopped answering
            process.kill(grace_seconds=30)
        return _start(root, wanted_port, timeout)


def stop(serving_root: str | Path, timeout: float = 30) -> bool:
    """Stop this serving root's server if it runs. True if there was one."""
    root = Path(serving_root).absolute()
    return _stop(root, _running_server(root), timeout)


def _stop(root: Path, process: LocalProcess | None, timeout: float = 30) -> bool:
    (state_dir(root) / "server.json").unlink(missing_ok=True)
    if process is None or not process.running():
        return False
    process.kill(grace_seconds=timeout)
    return True


@contextmanager
def _start_lock(root: Path):
    state_dir(root).mkdir(parents=True, exist_ok=True)
    with open(state_dir(root) / "server.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released by the OS if the holder dies
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _record(root: Path) -> dict:
    try:
        record = json.loads((state_dir(root) / "server.json").read_text())
        return record if isinstance(record, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_record(root: Path, record: dict) -> None:
    tmp = state_dir(root) / f".server.json.{os.getpid()}"
    tmp.write_text(json.dumps(record) + "\n")
    os.replace(tmp, state_dir(root) / "server.json")


def _start(root: Path, port_: int, timeout: float) -> str:
    python = config.serving_python()
    if not Path(python).exists():
        raise ServingUnavailable(f"no serving environment at {python}: run `make envs` "
                                 "(or set TUNE_SERVE_SERVING_PYTHON)")
    deadline = time.monotonic() + PORT_RELEASE_SECONDS  # a server that just died may still hold it
    while not is_free(port_) and time.monotonic() < deadline:
        time.sleep(0.25)
    if not is_free(port_):
        raise ServingUnavailable(
            f"port {port_} on {HOST} is taken by another process, so the model server cannot listen there; "
            f"choose another with TUNE_SERVE_SERVING_PORT=… (e.g. TUNE_SERVE_SERVING_PORT={port_ + 1})")
    state_dir(root).mkdir(parents=True, exist_ok=True)
    instance_id = secrets.token_hex(8)
    command = [python, "-m", SERVER_MODULE, "--model-config-dir", str(root), "--port", str(port_),
               "--host", HOST, "--poll-seconds", POLL_SECONDS, "--instance-id", instance_id]
    env = inherited_env(PYTHONPATH=str(config.REPO_ROOT / "include" / "serving"), PYTHONUNBUFFERED="1",
                        TF_CPP_MIN_LOG_LEVEL="2")
    process = LocalProcess.launch(process_dir(root), command, env)  # outlives the task
    _write_record(root, {"port": port_, "instance_id": instance_id})
    url = base_url(port_)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running():
            _stop(root, process)
            raise ServingUnavailable(f"the model server exited with {process.exit_code()} on start; "
                                     f"log {log_path(root)}:\n{_tail(log_path(root))}")
        if _ours_answering(process, port_, instance_id):
            return url
        time.sleep(0.25)
    _stop(root, process)
    raise ServingUnavailable(f"the model server did not answer on {url} within {timeout:.0f}s; "
                             f"log {log_path(root)}:\n{_tail(log_path(root))}")


def _running_server(root: Path) -> LocalProcess | None:
    """This root's server process, if it still runs (its start ticks tell a reused pid apart)."""
    process = LocalProcess(process_dir(root))
    try:
        return process if process.running() else None
    except (OSError, ValueError, KeyError, TypeError):  # never started, or a damaged record
        return None


def _ours_answering(process: LocalProcess, port_: int, instance_id: str | None) -> bool:
    """A process of its group listens on the port (the program under LocalProcess's shell
    wrapper), and what answers there is that very server (its instance id)."""
    if not instance_id or not any(_listens(pid, port_) for pid in process.pids()):
        return False
    try:
        response = httpx.get(f"{base_url(port_)}/tf-serving-rest/instance", timeout=2)
        return response.status_code == 200 and response.json().get("instance_id") == instance_id
    except (httpx.TransportError, ValueError):
        return False


def _listens(pid: int, port_: int) -> bool:
    try:
        return any(c.status == psutil.CONN_LISTEN and c.laddr.port == port_
                   for c in psutil.Process(pid).net_connections(kind="tcp"))
    except psutil.Error:
        return False


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def main(argv: list[str] | None = None) -> int:
    """`start` (wait until our server answers), `stop`, or `check` (is the port ours or free?)
    the serving root's model server."""
    parser = argparse.ArgumentParser(prog="python -m tune_serve.local.server")
    parser.add_argument("action", choices=["start", "stop", "check"])
    args = parser.parse_args(argv)
    root = config.serving_root()
    if args.action == "stop":
        stop(root)
        return 0
    if args.action == "check":  # exit 1 if the port is held by anything but this root's server
        record = _record(Path(root).absolute())
        process = _running_server(Path(root).absolute())
        if process is not None and record.get("port") == port() and \
                _ours_answering(process, port(), record.get("instance_id")):
            return 0
        if is_free(port()):
            return 0
        print(f"something else listens on {HOST}:{port()}", file=sys.stderr)
        return 1
    try:
        url = ensure_root_server(root)
    except ServingUnavailable as exc:
        print(f"error: model server: {exc}", file=sys.stderr)
        return 1
    print(f"Model server is up: {url} (serving root {Path(root).absolute()}, log {log_path(root)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
