"""Benchmark 5: preemption cost. A tuner SIGKILLed mid-trial and restarted with the same id,
against the same search unkilled.

The trainer-level distributed path with the real Keras trial: a chief and 2 tuners on
127.0.0.1, a small prepared diamonds sample, random search with a fixed seed (both runs get
the same trials). In the killed run the first tuner whose trial has backed up an epoch is
killed at once and restarted immediately (Airflow would add its retry delay on top: 10 s,
exponential). Figures: extra search time (first trial handed out to last trial ended, from
the chief's log: the three processes' first start is the same in both runs and only adds
noise; the restarted tuner's start is inside it), epochs re-run (trained twice), the seconds
from the kill to the resumed trial's next epoch, and what Keras Tuner alone would re-run (it
restarts a re-issued trial from epoch 0). Pairs run back to back (unkilled, killed) and the
median of the paired differences is reported: the machine's load moves more than the cost.
Run with the trainer venv.
"""
from __future__ import annotations

import json
import shutil
import statistics
import time
from pathlib import Path

from common import Step, Workdir, emit, free_port, parse_args, r, run_step, trial_events, wait_for


class Search:
    def __init__(self, workdir: Path, name: str, data: Path, trials: int, epochs: int):
        self.name, self.workdir = name, workdir
        self.run_root = workdir / name / "runs" / "bench"
        shutil.copytree(data, self.run_root / "data")
        self.tuning = self.run_root / "tuning"
        self.port = free_port()
        self.flags = ["--run-root", str(self.run_root), "--algorithm", "random", "--max-trials", str(trials),
                      "--epochs", str(epochs), "--seed", "3"]

    def tuner(self, tuner_id: str, suffix: str = "") -> Step:
        return Step(f"{self.name}-{tuner_id}{suffix}", ["tune", *self.flags, "--tuner-id", tuner_id, "--oracle-address",
                                                         f"127.0.0.1:{self.port}", "--poll-seconds", "0.2",
                                                         "--heartbeat-seconds", "1"], self.workdir)

    def chief(self) -> Step:
        # A long lease: the restarted tuner must find its trial still held by its id.
        return Step(f"{self.name}-chief", ["oracle", *self.flags, "--port", str(self.port), "--lease-seconds", "300"],
                    self.workdir)

    def _resume_dir(self, trial_id: str) -> Path:
        return self.tuning / f"trial_{trial_id}" / "resume" / "execution_0"

    def backed_up(self, trial_id: str) -> int:
        path = self._resume_dir(trial_id) / "backup" / "training_metadata.json"
        return json.loads(path.read_text())["epoch"] if path.exists() else 0

    def epochs_recorded(self, trial_id: str) -> int:
        path = self._resume_dir(trial_id) / "epochs.json"
        return len(json.loads(path.read_text())["epochs"]) if path.exists() else 0

    def holder_with_backup(self):
        ongoing = json.loads((self.tuning / "oracle.json").read_text())["ongoing_trials"]
        return next(((t, i) for t, i in sorted(ongoing.items()) if self.backed_up(i) >= 1), None)


def run_search(workdir: Path, name: str, data: Path, trials: int, epochs: int, kill: bool) -> dict:
    search = Search(workdir, name, data, trials, epochs)
    started = time.monotonic()
    tuners = {t: search.tuner(t) for t in ("tuner-0", "tuner-1")}  # before the chief: both ask at once
    chief = search.chief()
    procs = [chief, *tuners.values()]
    killed = {}
    try:
        if kill:
            victim, trial_id = wait_for(search.holder_with_backup, 600, "a trial to back up an epoch", interval=0.01)
            tuners[victim].kill()
            killed_at = time.monotonic()
            killed = {"tuner_id": victim, "trial_id": trial_id, "backed_up_epoch": search.backed_up(trial_id),
                      "epochs_recorded": search.epochs_recorded(trial_id), "at_seconds": r(killed_at - started, 1)}
            restarted = search.tuner(victim, "-restarted")
            procs.append(restarted)
            tuners[victim] = restarted
            # the restarted worker's first new epoch: one more epoch recorded than before the kill
            wait_for(lambda: search.epochs_recorded(trial_id) > killed["epochs_recorded"]
                     or not search._resume_dir(trial_id).exists(), 600, "the resumed trial's next epoch", interval=0.05)
            killed["restart_to_next_epoch_seconds"] = r(time.monotonic() - killed_at, 1)
        oracle = chief.result()
        for t in tuners.values():
            t.result(timeout=300)
    finally:
        for p in procs:
            p.kill()
    wall = time.monotonic() - started
    events = trial_events(chief.log)  # the search itself, without the 3 processes' first start
    search_span = max(t for t, k in events if k == "ended by") - min(t for t, k in events if k == "->")
    epoch_seconds = [t["seconds"] / t["epochs"] for t in oracle["trials"] if t["seconds"] and not t["resumed_from_epoch"]]
    out = {"wall_seconds": r(wall, 1), "search_seconds": r(search_span, 1),
           "epoch_seconds_median": r(statistics.median(epoch_seconds), 2) if epoch_seconds else None, "completed": oracle["completed"], "lost_tuners": oracle["lost_tuners"],
           "trials": {t["trial_id"]: {"objective": r(t["objective"], 2), "epochs": t["epochs"],
                                      "resumed_from_epoch": t["resumed_from_epoch"], "tuner_id": t["tuner_id"]}
                      for t in oracle["trials"]}}
    if killed:
        resumed = out["trials"][killed["trial_id"]]["resumed_from_epoch"]
        killed["resumed_from_epoch"] = resumed
        killed["epochs_rerun"] = killed["epochs_recorded"] - resumed
        killed["epochs_rerun_keras_tuner_alone"] = killed["epochs_recorded"]
        out["killed"] = killed
    return out


def main() -> None:
    args = parse_args(__doc__)
    rows, trials, epochs, pairs = (3000, 2, 4, 1) if args.quick else (8000, 4, 5, 3)
    with Workdir(args.workdir, "preempt") as workdir:
        prepared = workdir / "prepared" / "runs" / "data"
        run_step("prepare", ["prepare", "--run-root", str(prepared), "--sample-rows", str(rows), "--seed", "7"], workdir)
        runs = []
        for i in range(pairs):
            for kill in (False, True):
                run = run_search(workdir, f"{'killed' if kill else 'unkilled'}-{i}", prepared / "data", trials, epochs, kill)
                runs.append({"kill": kill, **run})
                k = run.get("killed")
                print(f"  {'killed  ' if kill else 'unkilled'} search {run['search_seconds']:6.1f}s (run {run['wall_seconds']}s), "
                      f"completed {run['completed']}"
                      + (f"  (killed {k['tuner_id']} in trial {k['trial_id']} with {k['epochs_recorded']} epoch(s) done, "
                         f"resumed from epoch {k['resumed_from_epoch']}; next epoch {k['restart_to_next_epoch_seconds']}s "
                         "after the kill)" if k else ""), flush=True)
    pairs_ = [(a, b) for a, b in zip(runs[::2], runs[1::2])]  # (unkilled, killed), run back to back
    kills = [b["killed"] for _, b in pairs_]
    med = lambda xs: r(statistics.median(xs), 2)  # noqa: E731
    figures = {
        "unkilled_search_seconds": med([a["search_seconds"] for a, _ in pairs_]),
        "killed_search_seconds": med([b["search_seconds"] for _, b in pairs_]),
        "extra_search_seconds": med([b["search_seconds"] - a["search_seconds"] for a, b in pairs_]),
        "extra_search_ratio": med([b["search_seconds"] / a["search_seconds"] for a, b in pairs_]),
        "extra_wall_seconds": med([b["wall_seconds"] - a["wall_seconds"] for a, b in pairs_]),
        "epochs_rerun": [k["epochs_rerun"] for k in kills],
        "epochs_rerun_keras_tuner_alone": [k["epochs_rerun_keras_tuner_alone"] for k in kills],
        "restart_to_next_epoch_seconds": [k["restart_to_next_epoch_seconds"] for k in kills],
        "epoch_seconds": med([a["epoch_seconds_median"] for a, _ in pairs_ if a["epoch_seconds_median"]]),
    }
    print(f"\nPreemption (chief + 2 tuners, {trials} trials x {epochs} epochs, {rows} rows, {pairs} pair(s)):")
    print(f"  search (first trial out to last trial in): unkilled {figures['unkilled_search_seconds']}s, "
          f"killed {figures['killed_search_seconds']}s, extra {figures['extra_search_seconds']}s "
          f"(x{figures['extra_search_ratio']}); whole runs: extra {figures['extra_wall_seconds']}s")
    print(f"  epochs re-run {figures['epochs_rerun']} (Keras Tuner alone: {figures['epochs_rerun_keras_tuner_alone']}); "
          f"kill -> next epoch of the resumed trial {figures['restart_to_next_epoch_seconds']}s "
          f"(an epoch takes ~{figures['epoch_seconds']}s)")
    emit("preemption", {"quick": args.quick, "sample_rows": rows, "trials": trials, "epochs": epochs,
                        "figures": figures, "runs": runs}, args.out)


if __name__ == "__main__":
    main()
