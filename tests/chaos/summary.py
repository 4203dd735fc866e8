"""The fault-injection suite's verdict, from what its tests recorded (var/chaos/results.jsonl).

    python tests/chaos/summary.py [RESULTS [MORE_RESULTS...]] [--markdown docs/fault-costs.md]

Prints one line per injected fault, then, last, exactly:
    chaos: faults injected N, survived N, lost 0 (trials 0, models 0, served versions 0)
and exits non-zero unless every fault was survived with nothing lost. --markdown also writes
the table of what each fault cost.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT = Path(os.environ.get("CHAOS_RESULTS", REPO / "var" / "chaos" / "results.jsonl"))
LOST = ("trials", "models", "served_versions")


def load(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _cost(cost: dict) -> str:
    return ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cost.items() if v is not None) or "-"


EXTRA = {"extra_search_seconds": "search", "extra_train_seconds": "training", "extra_run_seconds": "run"}
DETAILS = {
    "replacement_started_after_seconds": "retry's pod up {} s after the kill",
    "chief_restarted_after_seconds": "chief restarted {} s after the kill",
    "lease_seconds": "tuner lease {} s",
    "scheduler_down_seconds": "scheduler down {} s",
    "seconds_to_reattach": "tasks re-attached {} s after the kill",
    "reattached_to_running_pods": "{} pods still running when re-attached",
    "pair_wall_seconds": "wall {} s",
    "deploy_seconds": "deployment {} s",
    "requests": "{} predictions",
    "requests_during": "{} predictions during it",
    "failed_requests": "{} failed",
    "failed_requests_during": "{} failed",
}


def _span(values: list) -> str:
    """One measurement, or the range over several runs of the suite."""
    flat = [v for v in values if v is not None]
    if not flat:
        return "-"
    if isinstance(flat[0], list):
        flat = [x for v in flat for x in v]
    low, high = min(flat), max(flat)
    return f"{low:g}" if low == high else f"{low:g} to {high:g}"


def _runs(n: int) -> str:
    return "one run of the suite" if n == 1 else f"{n} runs of the suite, a range where they differ"


def markdown(runs: list[list[dict]]) -> str:
    """What each fault cost, as measured by one or more runs of the suite (ranges over runs).
    One row per process or serving fault; the bad confs (case 7) in one row."""
    faults: dict[tuple, list[dict]] = {}
    for records in runs:
        for r in records:
            if r["case"] != 7:
                faults.setdefault((r["case"], r["fault"]), []).append(r.get("cost") or {})
    rows = ["| case | fault | extra wall seconds | epochs re-run | measured |", "|---|---|---|---|---|"]
    for (case, fault), costs in sorted(faults.items(), key=lambda item: item[0][0]):
        keys = {k for c in costs for k in c}
        extra = [f"{label} {_span([c.get(k) for c in costs])}" for k, label in EXTRA.items() if k in keys]
        details = [text.format(_span([c.get(k) for c in costs])) for k, text in DETAILS.items() if k in keys]
        epochs = _span([c.get("epochs_rerun") for c in costs]) if "epochs_rerun" in keys else "-"
        rows.append(f"| {case} | {fault} | {', '.join(extra) or '-'} | {epochs} | {'; '.join(details) or '-'} |")
    bad = [r for r in runs[0] if r["case"] == 7]
    if bad:
        seconds = sorted(r["cost"].get("seconds_to_rejection", 0) for r in bad)
        at_trigger = sum(1 for r in bad if r.get("stage") == "refused at trigger")
        rows.append(f"| 7 | {len(bad)} bad confs: {at_trigger} refused at trigger time, {len(bad) - at_trigger} "
                    f"failed in validate_params or prepare_data | - | 0 | rejected after {seconds[0]:g} to "
                    f"{seconds[-1]:g} s (median {seconds[len(seconds) // 2]:g}) |")
    when = datetime.now(UTC).strftime("%Y-%m-%d")
    return (
        "# What a fault costs\n\n"
        f"Measured by `make chaos` (tests/chaos/; {_runs(len(runs))}, {when}) on a shared 2-core machine "
        "with tiny runs: 1,500 diamonds, 4 trials of "
        "3 epochs on 2 tuners, the top 2 trained for 3 epochs; the `sleep` objective: 6 trials of 3 × 4 s "
        "epochs. Extra wall seconds compare the faulted run with an unfaulted run of the same conf started "
        "at the same moment (search: the chief's start to the end of the wait for it; training: first "
        "try's start to last try's end), so they include the retry delay (10–20 s before a first retry), "
        "a process restart (TensorFlow import) and tens of seconds of noise from five runs sharing two "
        "cores: read them as an order of magnitude. Epochs re-run: epochs finished before the kill minus "
        "the epoch the retry resumed from. The scheduler kill is timed differently: its pods never stop, "
        "so the run is late only by how long after its pods ended their tasks noticed.\n\n"
        + "\n".join(rows) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", nargs="*", type=Path, default=[DEFAULT],
                        help="results file (the verdict is this run's); more files widen the cost ranges")
    parser.add_argument("--markdown", type=Path, help="also write the table of fault costs here")
    args = parser.parse_args(argv)
    records = load(args.results[0])
    lost = defaultdict(int)
    for r in records:
        print(f"  case {r['case']}: {'survived' if r.get('survived') else 'NOT SURVIVED'}: {r['fault']}"
              + (f" [{r['run_id']}]" if r.get("run_id") else "") + f" - cost: {_cost(r.get('cost') or {})}"
              + (f" - {r['error']}" if r.get("error") else ""))
        for kind in LOST:
            lost[kind] += int((r.get("lost") or {}).get(kind) or 0)
    if args.markdown:
        args.markdown.write_text(markdown([records] + [load(path) for path in args.results[1:]]))
    survived = sum(1 for r in records if r.get("survived"))
    total = sum(lost.values())
    print(f"chaos: faults injected {len(records)}, survived {survived}, lost {total} "
          f"(trials {lost['trials']}, models {lost['models']}, served versions {lost['served_versions']})")
    return 0 if records and survived == len(records) and total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
