"""Shared by every benchmark, whatever its virtualenv: the standard library only.

Processes of the trainer (`python -m trainer ...`), free ports, waiting on files, small
statistics, the machine's description, and the JSON each benchmark hands to run.py.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
VENV = REPO / ".venv"
TRAINER_PY = str(VENV / "trainer" / "bin" / "python")
SERVING_PY = str(VENV / "serving" / "bin" / "python")
AIRFLOW_PY = str(VENV / "airflow" / "bin" / "python")

sys.path.insert(0, str(REPO / "scripts"))
from private_airflow import free_port  # noqa: E402,F401  (standard library only at import time)


def machine() -> dict:
    """What the figures were measured on; the load says how noisy the run was."""
    mem = next((int(line.split()[1]) for line in open("/proc/meminfo") if line.startswith("MemTotal")), 0)
    model = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"cores": os.cpu_count(), "cpu": model, "memory_gib": round(mem / 2**20, 1),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
            "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "python": sys.version.split()[0]}



def trainer_env() -> dict:
    return {**os.environ, "PYTHONPATH": str(REPO / "include" / "trainer"), "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONUNBUFFERED": "1", "KERASTUNER_ORACLE_SECRET_FILE": _search_secret()}


_SECRET: list[str] = []


def _search_secret() -> str:
    """One search secret for the benchmark's chiefs and tuners (a file only the user reads)."""
    if not _SECRET:
        import secrets
        import tempfile

        fd, path = tempfile.mkstemp(prefix="bench-oracle-", suffix=".secret")  # created 0600
        os.write(fd, secrets.token_urlsafe(32).encode())
        os.close(fd)
        _SECRET.append(path)
    return _SECRET[0]


class Step:
    """One `python -m trainer STEP` process, its log and XCom file in `workdir`."""

    def __init__(self, name: str, args: list[str], workdir: Path):
        self.name, self.workdir = name, workdir
        self.xcom, self.log = workdir / f"{name}.json", workdir / f"{name}.log"
        self.started = time.monotonic()
        self.ended: float | None = None
        with open(self.log, "w") as log:
            self.popen = subprocess.Popen([TRAINER_PY, "-m", "trainer", *args, "--xcom-file", str(self.xcom)],
                                          stdout=log, stderr=subprocess.STDOUT, env=trainer_env(), cwd=workdir)

    def running(self) -> bool:
        return self.popen.poll() is None

    def result(self, timeout: float = 1800) -> dict:
        code = self.popen.wait(timeout=timeout)
        self.ended = self.ended or time.monotonic()
        if code != 0:
            raise RuntimeError(f"{self.name} exited {code}:\n{self.tail()}")
        return json.loads(self.xcom.read_text())

    @property
    def seconds(self) -> float:
        return (self.ended or time.monotonic()) - self.started

    def kill(self, sig: int = 9) -> None:
        if self.running():
            self.popen.send_signal(sig)
            self.popen.wait(timeout=60)
            self.ended = time.monotonic()

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(l for l in text[-lines:] if "I0000" not in l)


def run_step(name: str, args: list[str], workdir: Path, timeout: float = 3600) -> dict:
    step = Step(name, args, workdir)
    try:
        return step.result(timeout)
    finally:
        step.kill()


def wait_for(probe, timeout: float, what: str, interval: float = 0.02):
    """Poll `probe()` until truthy; a file caught mid-write reads as not yet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = probe()
        except (OSError, ValueError, KeyError):
            value = None
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100): p99 of 1000 samples is the 990th value."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict:
    return {"median": statistics.median(values), "worst": max(values), "best": min(values), "n": len(values)}


def r(x: float | None, digits: int = 3):
    return None if x is None else round(x, digits)


def emit(name: str, result: dict, out: str | None) -> None:
    """Write one benchmark's figures where run.py collects them (and to stdout when run alone)."""
    result = {"benchmark": name, "machine": machine(), **result}
    text = json.dumps(result, indent=2, default=str)
    if out:
        Path(out).write_text(text + "\n")
    else:
        print(text)


def parse_args(doc: str):
    import argparse

    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller smoke run")
    parser.add_argument("--out", help="write the JSON result here (default: print it)")
    parser.add_argument("--workdir", help="keep artifacts here (default: a temporary directory, removed)")
    return parser.parse_args()


class Workdir:
    """A temporary directory for a benchmark's artifacts, or the one given (then kept)."""

    def __init__(self, given: str | None, prefix: str):
        import tempfile

        self.keep = given is not None
        self.path = Path(given) if given else Path(tempfile.mkdtemp(prefix=f"bench-{prefix}-"))
        self.path.mkdir(parents=True, exist_ok=True)

    def __enter__(self) -> Path:
        return self.path

    def __exit__(self, *exc) -> None:
        if not self.keep:
            import shutil

            shutil.rmtree(self.path, ignore_errors=True)


# The trainer's log lines (trainer.tuning.settings.configure_logging): the chief's
# "trial 03 -> tuner-1 ..." / "trial 03 ended by tuner-1", a worker's "trial 03 begins" / "ended:".
_TRIAL_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*trial (\S+) (->|ended by|begins|ended:)")


def trial_events(log: Path) -> list[tuple[float, str]]:
    """(unix time, kind) of every trial line of a chief's or worker's log, kind one of
    '->', 'ended by' (chief), 'begins', 'ended:' (worker). Log times are local time."""
    out = []
    for line in Path(log).read_text(errors="replace").splitlines():
        m = _TRIAL_LINE.match(line)
        if m:
            out.append((dt.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp(), m.group(3)))
    return out
