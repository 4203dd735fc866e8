"""Real `oracle`/`tune` processes on 127.0.0.1 for the distributed tuning tests, and readers
of the state they leave under `{run_root}/tuning/`.

Tests wait on that state (a trial held by a tuner, an epoch in its progress file), never on
log lines or fixed sleeps.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRAINER_SRC = REPO / "include" / "trainer"
if str(REPO / "plugins") not in sys.path:  # the one loopback-port helper (standard library only)
    sys.path.insert(0, str(REPO / "plugins"))
from tune_serve.local.ports import free_port  # noqa: E402


def env() -> dict:
    return {**os.environ, "PYTHONPATH": str(TRAINER_SRC), "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONUNBUFFERED": "1"}


def wait_for(probe, timeout: float, what: str, interval: float = 0.02):
    """Poll `probe()` until it returns something truthy; files being rewritten read as None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (OSError, ValueError, KeyError):  # a JSON file caught mid-write, not there yet
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def write_secret(path: Path) -> Path:
    """A search secret as the backends make one: a random token in a file only the user reads."""
    import secrets

    path.touch(mode=0o600)
    path.write_text(secrets.token_urlsafe(32))
    return path


class Proc:
    def __init__(self, name: str, args: list[str], workdir: Path, extra_env: dict | None = None,
                 launcher: Path | None = None):
        self.name = name
        self.xcom = workdir / f"{name}.json"
        self.log = workdir / f"{name}.log"
        self.args = args
        self.started = time.monotonic()
        with open(self.log, "w") as log:
            # `launcher`: a script that prepares the process (e.g. two logical devices) and runs the CLI
            program = [sys.executable, str(launcher)] if launcher else [sys.executable, "-m", "trainer"]
            self.popen = subprocess.Popen([*program, *args, "--xcom-file", str(self.xcom)],
                                          stdout=log, stderr=subprocess.STDOUT, env={**env(), **(extra_env or {})},
                                          cwd=workdir)
        self.ended: float | None = None

    def running(self) -> bool:
        return self.popen.poll() is None

    def wait(self, timeout: float) -> int:
        try:
            code = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"{self.name} still running after {timeout:.0f}s\n{self.tail()}") from None
        self.ended = self.ended or time.monotonic()
        return code

    def result(self, timeout: float = 240) -> dict:
        code = self.wait(timeout)
        assert code == 0, f"{self.name} exited {code}\n{self.tail()}"
        return json.loads(self.xcom.read_text())

    def signal(self, sig: int) -> None:
        self.popen.send_signal(sig)
        if sig == signal.SIGKILL:
            self.popen.wait(timeout=30)
            self.ended = time.monotonic()

    def tail(self, lines: int = 40) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        keep = [l for l in text if "I0000" not in l and "absl::InitializeLog" not in l]
        return f"--- {self.name} ---\n" + "\n".join(keep[-lines:])


class Search:
    """One search: a run root, the flags every process shares, the processes started."""

    def __init__(self, workdir: Path, run_root: Path, *flags: str):
        self.workdir = workdir
        self.run_root = run_root
        self.tuning = run_root / "tuning"
        self.port = free_port()
        self.flags = ["--run-root", str(run_root), *flags]
        self.procs: list[Proc] = []
        self.secret_file = write_secret(workdir / f"oracle-{self.port}.secret")

    def _start(self, name: str, args: list[str], launcher: Path | None = None) -> Proc:
        proc = Proc(name, args, self.workdir, {"KERASTUNER_ORACLE_SECRET_FILE": str(self.secret_file)}, launcher)
        self.procs.append(proc)
        return proc

    def chief(self, *flags: str, name: str = "chief") -> Proc:
        return self._start(name, ["oracle", *self.flags, "--port", str(self.port), *flags])

    def worker(self, tuner_id: str, *flags: str, name: str | None = None, launcher: Path | None = None) -> Proc:
        return self._start(name or tuner_id, ["tune", *self.flags, "--tuner-id", tuner_id,
                                              "--oracle-address", f"127.0.0.1:{self.port}", "--poll-seconds", "0.2",
                                              *flags], launcher)

    def run(self, chief_flags: tuple[str, ...], workers: int, worker_flags: tuple[str, ...],
            tuners_first: bool = False) -> tuple[dict, list[dict]]:
        """A chief and `workers` tuners (tuner-0...) to the end: (the chief's result, each tuner's).
        `tuners_first`: the tuners start before the chief and wait for it, as pods may."""
        try:
            chief = None if tuners_first else self.chief(*chief_flags)
            procs = [self.worker(f"tuner-{i}", *worker_flags) for i in range(workers)]
            chief = chief or self.chief(*chief_flags)
            return chief.result(), [w.result() for w in procs]
        finally:
            self.stop_all()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.running():
                proc.popen.kill()
                proc.popen.wait(timeout=30)

    def logs(self) -> str:
        return "\n".join(p.tail() for p in self.procs)

    # -- stored state ---------------------------------------------------------------------------

    def oracle_state(self) -> dict:
        return json.loads((self.tuning / "oracle.json").read_text())

    def trial_state(self, trial_id: str) -> dict:
        return json.loads((self.tuning / f"trial_{trial_id}" / "trial.json").read_text())

    def held_by(self, tuner_id: str) -> str | None:
        return self.oracle_state()["ongoing_trials"].get(tuner_id)

    def epochs_recorded(self, trial_id: str, execution: int = 0) -> dict:
        path = self.tuning / f"trial_{trial_id}" / "resume" / f"execution_{execution}" / "epochs.json"
        return json.loads(path.read_text())

    def backed_up_epoch(self, trial_id: str, execution: int = 0) -> int:
        path = self.tuning / f"trial_{trial_id}" / "resume" / f"execution_{execution}" / "backup" / "training_metadata.json"
        return json.loads(path.read_text())["epoch"] if path.exists() else 0

    def resume_dirs(self) -> list[Path]:
        return sorted(self.tuning.glob("trial_*/resume"))


def finished_by_workers(*results: dict) -> dict[str, list[str]]:
    """trial id -> the tuner ids whose XCom lists it (exactly one each in a healthy search)."""
    seen: dict[str, list[str]] = {}
    for result in results:
        for trial in result["trials"]:
            seen.setdefault(trial["trial_id"], []).append(result["tuner_id"])
    return seen


def chief_oracle(settings, **make_oracle_options):
    """The chief's leased oracle for `settings` over its run root (lease 10^6 s unless given);
    reloads what is there, as a restarted chief does."""
    from trainer.tuning.distributed.oracles import make_oracle

    make_oracle_options.setdefault("lease_seconds", 1e6)
    oracle = make_oracle(settings, **make_oracle_options)
    oracle._set_project_dir(str(settings.args.run_root), "tuning")
    if (Path(settings.args.run_root) / "tuning" / "oracle.json").exists():
        oracle.reload()
    else:
        oracle.save()
    return oracle
