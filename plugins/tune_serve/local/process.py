"""A local stand-in for a pod: a detached process with its own directory.

The directory holds everything needed to find the process again from another Airflow
worker (like a pod name): `process.json` (pid and kernel start time, so a reused pid is
never mistaken for ours), `launch.json` (argv and env, to restart it), `output.log`
(stdout+stderr, streamed into the task log), `return.json` (the step's XCom file) and
`exit_status`, written by a tiny shell wrapper because a process we did not start
(after a worker restart) cannot be waited for.

States, as a pod would report them: running, succeeded, failed (non-zero exit of the
program itself) and killed (terminated by a signal or vanished: a preemption).
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

RUNNING, SUCCEEDED, FAILED, KILLED = "running", "succeeded", "failed", "killed"

# `sh` records the program's exit status; 128+N means it died of signal N (as in a pod).
_WRAPPER = 'trap "" HUP; "$@"; echo $? > "$0.tmp" && mv "$0.tmp" "$0"'
# What a detached process inherits from the worker: launch.json records its env for a
# relaunch, so it never gets the whole os.environ (settings, tokens, the worker's own paths).
_PASS_THROUGH_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "TZ",
                     # how the worker reaches Google Cloud, which a cluster's pods get from their
                     # service account: credentials' path, project, and (tests, tests/gcs_emulator.py)
                     # an emulator's endpoint, its CA and TensorFlow's own test token
                     "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_CLOUD_PROJECT", "STORAGE_EMULATOR_HOST",
                     "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "CURL_CA_BUNDLE", "GOOGLE_AUTH_TOKEN_FOR_TESTING",
                     "NO_GCE_CHECK")


def inherited_env(**env: str) -> dict[str, str]:
    """The few worker variables a detached process needs, plus `env`."""
    return {**{k: os.environ[k] for k in _PASS_THROUGH_ENV if k in os.environ}, **env}


def spawn_detached(argv: list[str], env: dict[str, str], log_file: Path, cwd: Path) -> subprocess.Popen:
    """The one way the local backend starts a process that outlives the task starting it (a
    "pod", the chief, a model server): its own session, no stdin, output appended to `log_file`."""
    with open(log_file, "ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                cwd=cwd, start_new_session=True)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group `pgid`, from /proc."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            members.append(int(stat.parent.name))
    return members


def _start_ticks(pid: int) -> int | None:
    """Kernel start time of `pid` (field 22 of /proc/pid/stat), None if gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    if fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


@dataclass
class LocalProcess:
    directory: Path

    @property
    def log_file(self) -> Path:
        return self.directory / "output.log"

    @property
    def xcom_file(self) -> Path:
        return self.directory / "return.json"

    @property
    def _exit_file(self) -> Path:
        return self.directory / "exit_status"

    @classmethod
    def launch(cls, directory: str | Path, argv: list[str], env: dict[str, str]) -> LocalProcess:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "launch.json").write_text(
            json.dumps({"argv": argv, "env": env, "launched_at": time.time()}, indent=1))
        proc = cls(directory)
        proc._start(argv, env)
        return proc

    def relaunch(self) -> None:
        """Start the same command again in the same directory (a Job restarting its pod)."""
        spec = self.launch_spec()
        self._start(spec["argv"], spec["env"])

    def _start(self, argv: list[str], env: dict[str, str]) -> None:
        for stale in (self._exit_file, self.xcom_file):
            stale.unlink(missing_ok=True)
        env = {**env, "TRAINER_XCOM_FILE": str(self.xcom_file)}
        popen = spawn_detached(["/bin/sh", "-c", _WRAPPER, str(self._exit_file), *argv], env, self.log_file,
                               self.directory)  # survives the worker that started it
        record = {"pid": popen.pid, "start_ticks": _start_ticks(popen.pid), "started_at": time.time()}
        restarts = self.record().get("restarts", -1) + 1 if (self.directory / "process.json").exists() else 0
        record["restarts"] = restarts
        (self.directory / "process.json").write_text(json.dumps(record))
        self._popen = popen

    def launch_spec(self) -> dict:
        """argv, env and launched_at (the first start; restarts keep it)."""
        return json.loads((self.directory / "launch.json").read_text())

    def launched_at(self) -> float:
        return self.launch_spec()["launched_at"]

    def record(self) -> dict:
        return json.loads((self.directory / "process.json").read_text())

    def _reap(self) -> None:
        popen = getattr(self, "_popen", None)
        if popen is not None:
            popen.poll()  # our own child: collect it so it does not linger as a zombie

    def running(self) -> bool:
        self._reap()
        record = self.record()
        return record["start_ticks"] is not None and _start_ticks(record["pid"]) == record["start_ticks"]

    def exit_code(self) -> int | None:
        try:
            return int(self._exit_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def state(self) -> str:
        if self.running():
            return RUNNING
        code = self.exit_code()
        if code is None or code >= 128:
            return KILLED  # killed with its wrapper (no status) or by a signal
        return SUCCEEDED if code == 0 else FAILED

    def reason(self) -> str:
        """The program's one-line reason: its last `error:` line, as a pod's termination message."""
        lines = self.log_file.read_text(errors="replace").splitlines() if self.log_file.exists() else []
        for line in reversed(lines):
            if line.startswith("error:"):
                return line
        return lines[-1] if lines else f"exit status {self.exit_code()}"

    def result(self) -> dict | None:
        try:
            return json.loads(self.xcom_file.read_text())
        except (OSError, ValueError):
            return None

    def pids(self) -> list[int]:
        """The live processes of its group: the wrapper and the program (and what it started)."""
        return _group_members(self.record()["pid"]) if self.running() else []

    def kill(self, sig: int = signal.SIGTERM, grace_seconds: float = 10.0) -> None:
        """Stop the whole process group (the wrapper and the program), escalating to SIGKILL.
        Returns once the program is gone too, not only the wrapper (the shell dies first on
        SIGTERM while the program may still be shutting down, holding its port)."""
        if not self.running():
            return
        pgid = self.record()["pid"]  # checked ours (start ticks) just above; the group keeps the id
        try:
            os.killpg(pgid, sig)
            deadline = time.monotonic() + grace_seconds
            while (self.running() or _group_members(pgid)) and time.monotonic() < deadline:
                time.sleep(0.2)
            if self.running() or _group_members(pgid):
                os.killpg(pgid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while (self.running() or _group_members(pgid)) and time.monotonic() < deadline:
                    time.sleep(0.1)
        except ProcessLookupError:
            pass

    def read_log(self, offset: int) -> tuple[list[str], int]:
        """New complete lines of output since `offset`, and the offset to continue from."""
        try:
            with open(self.log_file, "rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return [], offset
        end = data.rfind(b"\n") + 1
        return data[:end].decode(errors="replace").splitlines(), offset + end
