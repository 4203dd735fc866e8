"""Helpers for the TF Serving stand-in tests: a server process of the test's own, polling."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parents[2]
if str(REPO / "plugins") not in sys.path:  # the one loopback-port helper (standard library only)
    sys.path.insert(0, str(REPO / "plugins"))
from tune_serve.local.ports import free_port  # noqa: E402

MODEL = "scorer"



def wait_until(predicate, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = predicate()
        except (requests.RequestException, ValueError):
            result = None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@contextlib.contextmanager
def serving_version_1(root: Path, saved_model: Path, extra_args: tuple[str, ...] = ()):
    """A server with version 1 AVAILABLE, stopped on exit (module fixtures share one)."""
    process = ServingProcess(root, extra_args=extra_args)
    try:
        process.add_version(1, saved_model)
        process.wait_state(1, "AVAILABLE")
        yield process
    finally:
        process.stop()


class ServingProcess:
    """`python -m tf_serving_rest` on a free port, with a base path and config file of its own."""

    def __init__(self, root: Path, model_name: str = MODEL, extra_args: tuple[str, ...] = ()):
        self.model_name = model_name
        self.base_path = root / model_name
        self.base_path.mkdir(parents=True)
        self.config_path = root / f"{model_name}.config.json"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = root / "server.log"
        env = dict(os.environ, PYTHONPATH=str(REPO / "include" / "serving"))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tf_serving_rest", "--model-name", model_name,
                 "--model-base-path", str(self.base_path), "--port", str(self.port), "--poll-seconds", "0.2",
                 *extra_args],
                env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            wait_until(self._live, 120, "the server to come up")
        except BaseException:
            self.stop()
            raise

    def _live(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"server exited {self.process.returncode}:\n{self.log_path.read_text()[-3000:]}")
        # the server's own identity route: KServe's `GET /` liveness route is not served (not TF Serving's)
        return requests.get(f"{self.url}/tf-serving-rest/instance", timeout=1).ok

    def add_version(self, version: int, saved_model: Path) -> None:
        staged = self.base_path / f".staging-{version}"
        subprocess.run(["cp", "-r", str(saved_model), str(staged)], check=True)
        staged.rename(self.base_path / str(version))  # appear whole, as a deployer does it

    def set_labels(self, **labels: int) -> None:
        tmp = self.config_path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"version_labels": labels}))
        tmp.replace(self.config_path)

    def status(self, suffix: str = "") -> requests.Response:
        return requests.get(f"{self.url}/v1/models/{self.model_name}{suffix}", timeout=5)

    def predict(self, body: dict, route: str = "") -> requests.Response:
        return requests.post(f"{self.url}/v1/models/{self.model_name}{route}:predict", json=body, timeout=10)

    def wait_state(self, version: int, state: str, timeout: float = 60) -> dict:
        def reached():
            response = self.status(f"/versions/{version}")
            entry = response.json()["model_version_status"][0] if response.ok else {}
            return entry if entry.get("state") == state else None
        return wait_until(reached, timeout, f"version {version} to be {state}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
