"""Benchmarks 2 and 3, through the real DAG and scheduler of a private local Airflow
(scripts/airflow-stack.sh with its own AIRFLOW_HOME, port and roots, like tests/e2e).

2. `scaling`: trials per minute with W = 1, 2, 4, 8 tuners on fixed-length trials
   (`objective_function: "sleep"`, so the 2 cores are not the limit; the run stops after the
   search). Weak scaling: each run has 3 trials per tuner, so ideal runs take the same time.
   Throughput is measured twice: as Airflow sees it (first tuner task start to last tuner task
   end, REST API: includes pool scheduling and each tuner's process start) and as the oracle
   sees it (first trial handed out to last trial ended, the chief's log). Efficiency =
   throughput(W) / (W x throughput(1)).
3. `overhead`: the demo run (scripts/demo.py's DEMO_CONF; a tiny one with --quick): wall time
   of the DAG run against the compute on its critical path (the pod processes' own time:
   process.json's started_at to the exit_status file), and where the rest goes.

Run with the Airflow venv (never imports TensorFlow; the trainer venv is called for the
TensorFlow-import and data-loading measurements).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, TRAINER_PY, emit, r, trainer_env, trial_events

sys.path.insert(0, str(REPO / "plugins"))
import private_airflow  # noqa: E402  (scripts/, on the path through common)
from tune_serve.local.backend import run_folder  # noqa: E402

DAG = "tune_train_serve"
# Pod tasks run as processes; the rest are Airflow-only tasks (plain Python in the worker).
POD_TASKS = {"prepare_data", "tuning.tune", "training.train", "evaluation.evaluate"}


class Stack:
    """scripts/airflow-stack.sh start/stop with every root under a temporary directory."""

    def __init__(self, parallelism: int = 16, tuner_slots: int = 8):
        self.base = Path(tempfile.mkdtemp(prefix="bench-airflow-"))
        # 8 tuners hold 8 worker slots while their processes run; the rest of the DAG needs more.
        self.env = private_airflow.private_env(self.base, AIRFLOW__CORE__PARALLELISM=str(parallelism),
                                               TUNE_SERVE_TUNER_SLOTS=str(tuner_slots))

    def __enter__(self):
        started = time.monotonic()
        self.client = private_airflow.start(self.env)
        print(f"  private Airflow up in {time.monotonic() - started:.0f}s at {self.base}", flush=True)
        return self

    def __exit__(self, *exc):
        private_airflow.stop(self.env)
        if not os.environ.get("BENCH_KEEP"):
            import shutil

            shutil.rmtree(self.base, ignore_errors=True)

    def run(self, conf: dict, timeout: float) -> str:
        run_id = self.client.trigger(conf)
        state = self.client.wait(run_id, timeout=timeout)
        if state != "success":
            failed = [f"{t['task_id']}[{t['map_index']}] (try {t['try_number']})"
                      for t in self.client.task_instances(run_id) if t["state"] == "failed"]
            print(f"  run {run_id} ended {state}; failed: {', '.join(failed) or '-'}", flush=True)
        return run_id

    def pod_dir(self, run_id: str, task_id: str, map_index: int, try_number: int, kind: str | None = None) -> Path:
        # as tune_serve.local.backend._task_dir names it, under this stack's state dir
        name = task_id + (f".{map_index}" if map_index >= 0 else "")
        return Path(self.env["TUNE_SERVE_LOCAL_STATE_DIR"]) / DAG / run_folder(run_id) / name / (kind or f"try-{try_number}")


def ts(value: str | None) -> float | None:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None


def process_span(directory: Path) -> tuple[float, float] | None:
    """(start, end) of a local pod process: its record's started_at and its exit_status file."""
    try:
        started = json.loads((directory / "process.json").read_text())["started_at"]
        return started, (directory / "exit_status").stat().st_mtime
    except (OSError, ValueError, KeyError):
        return None


# -- 2. scaling ----------------------------------------------------------------------------------


def scaling(stack: Stack, quick: bool) -> dict:
    widths, per_tuner, epochs, sleep = ([1, 2], 2, 1, 3.0) if quick else ([1, 2, 4, 8], 3, 2, 5.0)
    trial_seconds = epochs * sleep
    rows = []
    for w in widths:
        conf = {"objective_function": "sleep", "trial_sleep_seconds": sleep, "tuning_epochs": epochs,
                "algorithm": "random", "max_trials": per_tuner * w, "num_tuners": w, "top_n": 1, "sample_rows": 100,
                "model_name": "bench-sleep"}
        run_id = stack.run(conf, timeout=1800)
        state = stack.client.run_state(run_id)
        tis = stack.client.task_instances(run_id)
        tuners = [t for t in tis if t["task_id"] == "tuning.tune"]
        wait = next(t for t in tis if t["task_id"] == "tuning.wait_oracle")
        chief = stack.client.xcom(run_id, "tuning.start_oracle")
        # Trials counted from the chief's log: a run whose wait_oracle failed still ran its search.
        events = trial_events(Path(chief["directory"]) / "output.log")
        trials = sum(1 for _, k in events if k == "ended by")
        handed = [t for t, k in events if k == "->"]
        ended = [t for t, k in events if k == "ended by"]
        first_start, last_end = min(ts(t["start_date"]) for t in tuners), max(ts(t["end_date"]) for t in tuners)
        dag_span, oracle_span = last_end - first_start, max(ended) - min(handed)
        row = {"tuners": w, "trials": trials, "run_state": state,
               "failed_tasks": [f"{t['task_id']}[{t['map_index']}] try {t['try_number']}"
                                for t in tis if t["state"] == "failed"],
               "tuner_tries": sorted(t["try_number"] for t in tuners),
               "dag_span_seconds": r(dag_span, 1), "oracle_span_seconds": r(oracle_span, 1),
               "ideal_seconds": per_tuner * trial_seconds,
               "tuner_start_spread_seconds": r(max(ts(t["start_date"]) for t in tuners) - first_start, 1),
               "first_trial_after_first_tuner_start_seconds": r(min(handed) - first_start, 1),
               "wait_oracle_end_after_last_tuner_seconds": r(ts(wait["end_date"]) - last_end, 1),
               "wait_oracle_try": wait["try_number"],  # > 1: the wait was retried
               "dag_trials_per_minute": r(60 * trials / dag_span, 2),
               "oracle_trials_per_minute": r(60 * trials / oracle_span, 2), "run_id": run_id}
        rows.append(row)
        print(f"  W={w}: {trials} trials, tuner tasks {row['dag_span_seconds']}s ({row['dag_trials_per_minute']}/min), "
              f"oracle {row['oracle_span_seconds']}s ({row['oracle_trials_per_minute']}/min), "
              f"tuner starts spread {row['tuner_start_spread_seconds']}s, wait_oracle try {row['wait_oracle_try']}", flush=True)
    base = rows[0]
    for row in rows:
        for kind in ("dag", "oracle"):
            row[f"{kind}_efficiency"] = r(row[f"{kind}_trials_per_minute"] / (row["tuners"] * base[f"{kind}_trials_per_minute"]), 3)
    print(f"\nTuner scaling ({per_tuner} trials per tuner, {trial_seconds:.0f}s trials: ideal "
          f"{60 / trial_seconds:.0f} trials/min per tuner):")
    print(f"  {'W':>3s} {'tasks/min':>10s} {'eff.':>6s} {'oracle/min':>11s} {'eff.':>6s}   "
          "first trial after first tuner task start (process start, TF import)")
    for row in rows:
        print(f"  {row['tuners']:3d} {row['dag_trials_per_minute']:10.2f} {row['dag_efficiency']:6.2f} "
              f"{row['oracle_trials_per_minute']:11.2f} {row['oracle_efficiency']:6.2f}   "
              f"{row['first_trial_after_first_tuner_start_seconds']}s")
    return {"trials_per_tuner": per_tuner, "trial_seconds": trial_seconds, "rows": rows}


# -- 3. overhead ---------------------------------------------------------------------------------


def _timed(code: str, repeat: int = 3) -> float:
    """Median wall seconds of `python -c code` in the trainer venv."""
    times = []
    for _ in range(repeat):
        t = time.monotonic()
        subprocess.run([TRAINER_PY, "-c", code], env=trainer_env(), check=True, capture_output=True)
        times.append(time.monotonic() - t)
    return statistics.median(times)


def _data_loading(data_dir: str) -> dict:
    """Seconds to read the bundled diamonds table and to read the train/eval TFRecords once,
    in the trainer venv, after TensorFlow is imported (the script prints its own timings)."""
    code = (
        "import json, sys, time\n"
        "import tensorflow as tf\n"
        "from trainer import data, prepare\n"
        "t = time.monotonic(); prepare.read_source('diamonds'); read = time.monotonic() - t\n"
        "spec = data.load_feature_spec(sys.argv[1]); t = time.monotonic()\n"
        "for split in ('train', 'eval'):\n"
        "    for _ in data.load_dataset(sys.argv[1], split, spec, 128): pass\n"
        "print(json.dumps({'read_diamonds': read, 'one_pass_tfrecords': time.monotonic() - t}))\n")
    out = subprocess.run([TRAINER_PY, "-c", code, data_dir], env=trainer_env(), check=True, capture_output=True, text=True)
    return {k: r(v, 2) for k, v in json.loads(out.stdout.strip().splitlines()[-1]).items()}


def critical_path(tis: list[dict], tasks: list[dict]) -> list[dict]:
    """From the last task instance to end, back through the upstream instance that ended last.

    wait_oracle's real upstream is the search the tuners run (it waits for the chief, which
    waits for them), so the tuner tasks count as its upstream here."""
    upstream: dict[str, set[str]] = {"tuning.wait_oracle": {"tuning.tune"}}
    for task in tasks:
        for down in task["downstream_task_ids"]:
            upstream.setdefault(down, set()).add(task["task_id"])
    done = [t for t in tis if t["end_date"]]
    path = [max(done, key=lambda t: ts(t["end_date"]))]
    while True:
        before = [t for t in done if t["task_id"] in upstream.get(path[-1]["task_id"], ())
                  and ts(t["end_date"]) <= ts(path[-1]["end_date"])]
        if not before:
            return path[::-1]
        path.append(max(before, key=lambda t: ts(t["end_date"])))


def overhead(stack: Stack, quick: bool) -> dict:
    """Walks the critical path; each step owns the time from its predecessor's end to its own
    end, split into scheduling (to queued), queued (to start) and running. A pod task's running
    is its process (the compute) plus the operator around it; other tasks run in Airflow only."""
    from demo import DEMO_CONF

    conf = dict(DEMO_CONF)
    if quick:  # the demo's shape, shrunk
        conf.update(sample_rows=2000, max_trials=2, num_tuners=2, tuning_epochs=1, top_n=1, training_epochs=2,
                    early_stopping_patience=1)
    conf["model_name"] = "bench-demo"
    run_id = stack.run(conf, timeout=3 * 3600)
    client = stack.client
    run = client.dag_run(run_id, DAG)
    tis = client.task_instances(run_id)
    tasks = client.tasks(DAG)
    wall = ts(run["end_date"]) - ts(run["start_date"])

    rest = {"scheduling": 0.0, "queued": 0.0, "operator_around_process": 0.0}
    airflow_tasks: dict[str, float] = {}
    steps, processes, compute, prev = [], 0, 0.0, ts(run["start_date"])
    for ti in critical_path(tis, tasks):
        end = ts(ti["end_date"])
        start = max(ts(ti["start_date"]), prev)  # a sensor started long before its upstream ended
        queued = min(max(ts(ti["queued_when"]) if ti["queued_when"] else start, prev), start)
        label = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
        step = {"task": label, "state": ti["state"], "try": ti["try_number"], "scheduling": r(queued - prev, 2),
                "queued": r(start - queued, 2), "run": r(end - start, 2)}
        rest["scheduling"] += queued - prev
        rest["queued"] += start - queued
        directory = stack.pod_dir(run_id, ti["task_id"], ti["map_index"], ti["try_number"])
        span = process_span(directory) if ti["task_id"] in POD_TASKS else None
        if span:
            processes += 1
            step["process"] = r(span[1] - span[0], 2)
            own = json.loads((directory / "return.json").read_text()).get("seconds")
            if isinstance(own, (int, float)):  # train and evaluate time their own work, after imports
                step["step_own_seconds"] = own
                step["process_startup"] = r(span[1] - span[0] - own, 2)
            compute += span[1] - span[0]
            rest["operator_around_process"] += (end - start) - (span[1] - span[0])
        else:
            airflow_tasks[ti["task_id"]] = airflow_tasks.get(ti["task_id"], 0.0) + end - start
        steps.append(step)
        prev = end
    rest["after_last_task"] = ts(run["end_date"]) - prev
    # The end of the search as each part sees it: last tuner process, the chief's exit, the sensor.
    tuners = [t for t in tis if t["task_id"] == "tuning.tune"]
    tuner_end = max(process_span(stack.pod_dir(run_id, t["task_id"], t["map_index"], t["try_number"]))[1] for t in tuners)
    chief = process_span(stack.pod_dir(run_id, "tuning.start_oracle", -1, 0, kind="chief"))
    sensor = next(t for t in tis if t["task_id"] == "tuning.wait_oracle")
    search_end = {"chief_exit_minus_last_tuner_exit": r(chief[1] - tuner_end, 1),
                  "sensor_done_after_chief_exit": r(ts(sensor["end_date"]) - chief[1], 1),
                  "wait_oracle_try": sensor["try_number"]}
    rest["airflow_only_tasks"] = sum(airflow_tasks.values())
    deploy = next((t for t in tis if t["task_id"] == "serving.deploy_serving" and t["end_date"]), None)
    deploy_seconds = r(ts(deploy["end_date"]) - ts(deploy["start_date"]), 2) if deploy else None

    tf_import = _timed("import tensorflow")
    python_start = _timed("pass")
    loading = _data_loading(f"{stack.env['TUNE_SERVE_STORAGE_ROOT']}/runs/{run_id}/data")
    startup = processes * tf_import
    figures = {
        "state": run["state"], "wall_seconds": r(wall, 1), "critical_path_compute_seconds": r(compute, 1),
        "wall_over_compute": r(wall / compute, 2),
        # an estimate: the import is timed after the run, under whatever load there is then
        "wall_over_compute_without_startup": r(wall / (compute - startup), 2) if compute > startup else None,
        "rest_seconds": {k: r(v, 1) for k, v in rest.items()},
        "airflow_only_tasks_seconds": {k: r(v, 1) for k, v in airflow_tasks.items()},
        "critical_path_processes": processes, "python_start_seconds": r(python_start, 2),
        "tensorflow_import_seconds": r(tf_import, 2),
        "startup_in_compute_seconds": r(startup, 1),  # processes x import tensorflow
        "data_loading_seconds": loading,
        "search_end_seconds": search_end,
        # a new version loaded into the running model server, smoke-tested and promoted
        "deploy_serving_seconds": deploy_seconds,
        "measured_startup_seconds": {s["task"]: s["process_startup"] for s in steps if "process_startup" in s},
    }
    print(f"\nOrchestration overhead of the demo run{' (quick conf)' if quick else ''}, {run['state']}:")
    print(f"  wall {figures['wall_seconds']}s, compute on the critical path {figures['critical_path_compute_seconds']}s "
          f"({processes} processes): wall/compute = {figures['wall_over_compute']} "
          f"({figures['wall_over_compute_without_startup']} without their TensorFlow import)")
    print("  the rest: " + ", ".join(f"{k} {v}s" for k, v in figures["rest_seconds"].items()))
    print(f"  end of the search: chief exit - last tuner exit {search_end['chief_exit_minus_last_tuner_exit']}s, "
          f"wait_oracle (deferred to the triggerer) done {search_end['sensor_done_after_chief_exit']}s after the chief's exit "
          f"(its try {search_end['wait_oracle_try']})")
    print("  Airflow-only tasks: " + ", ".join(f"{k} {v}s" for k, v in figures["airflow_only_tasks_seconds"].items()))
    print(f"  deploy_serving (new version into the running model server, smoke test, promotion): "
          f"{deploy_seconds}s (target <= 3 s)")
    print(f"  inside the compute: {processes} x import tensorflow {figures['tensorflow_import_seconds']}s "
          f"(python alone {figures['python_start_seconds']}s) = {figures['startup_in_compute_seconds']}s; "
          f"data loading: diamonds read {loading['read_diamonds']}s, one pass over the TFRecords "
          f"{loading['one_pass_tfrecords']}s; startup measured by the steps themselves: "
          + (", ".join(f"{k} {v}s" for k, v in figures["measured_startup_seconds"].items()) or "-"))
    print("  critical path (scheduling+queued+run s): " + " -> ".join(
        f"{s['task']} ({s['scheduling']}+{s['queued']}+{s['run']})" for s in steps))
    return {"conf": conf, "run_id": run_id, "figures": figures, "critical_path": steps,
            "task_instances": [{k: t[k] for k in ("task_id", "map_index", "state", "try_number", "queued_when",
                                                  "start_date", "end_date")} for t in tis]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", default="scaling,overhead", help="comma-separated: scaling, overhead")
    parser.add_argument("--out-dir", help="write scaling.json / overhead.json here (default: print)")
    args = parser.parse_args()
    selected = [name for name in args.only.split(",") if name]
    with Stack() as stack:
        for name in selected:
            result = {"scaling": scaling, "overhead": overhead}[name](stack, args.quick)
            emit(name, {"quick": args.quick, **result}, str(Path(args.out_dir) / f"{name}.json") if args.out_dir else None)


if __name__ == "__main__":
    main()
