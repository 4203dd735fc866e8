"""`make demo [MODEL=...]`: trigger tune_train_serve on bundled data and show what it decided.

MODEL picks a preset (PRESETS): none or `tabular` is the built-in model on diamonds (price
regression); `classifier` is the shipped example classifier
(include/models/tune_serve_models/classifier.py) on titanic (survived yes/no, binary);
`classifier-iris` the same model on iris (3 species, multiclass). DEMO_CONF='{...}' overrides
any field.

Runs against the local Airflow that `scripts/airflow-stack.sh start` brought up; leaves
Airflow and the model server running so the UI and the endpoint can be explored.
"""
from __future__ import annotations

import json
import os
import sys
import time
from urllib.parse import quote

import httpx

from tune_serve.client import AirflowClient

DEMO_CONF = {
    "source": "diamonds",
    "algorithm": "gp",  # the default (the form's too): said here because the demo shows its choices
    "max_trials": 6,
    "num_tuners": 2,
    "tuning_epochs": 3,
    "top_n": 2,
    "training_epochs": 12,
    "early_stopping_patience": 3,
    "mae_upper_bound": 1500.0,      # dollars: a diamond-price model worse than this is not shipped
    "max_mae_increase": 0.0,        # and never one worse than the version serving now
    "model_name": "diamonds",
}

CLASSIFIER = "tune_serve_models.classifier:build"
PRESETS = {
    "tabular": DEMO_CONF,
    # survived (yes/no) from class, age and sex: 1,316 passengers; judged by AUC, served as
    # P(no), P(yes) and the class names
    "classifier": {
        "source": "titanic", "task": "binary", "objective": "val_auc", "model": CLASSIFIER,
        "algorithm": "gp", "max_trials": 4, "num_tuners": 2, "tuning_epochs": 3, "top_n": 2,
        "training_epochs": 10, "early_stopping_patience": 3,
        "auc_lower_bound": 0.7,      # a classifier no better than this at ranking survivors is not shipped
        "max_auc_decrease": 0.0,     # and never one ranking worse than the version serving now
        "model_name": "titanic",
    },
    "classifier-iris": {
        "source": "iris", "task": "multiclass", "objective": "val_accuracy", "model": CLASSIFIER,
        "algorithm": "random", "max_trials": 4, "num_tuners": 2, "tuning_epochs": 10, "top_n": 1,
        "training_epochs": 40, "early_stopping_patience": 8,
        "accuracy_lower_bound": 0.8, "model_name": "iris",
    },
}


def _progress():
    seen: dict[tuple, str] = {}

    def show(task_instances):
        for ti in task_instances:
            key = (ti["task_id"], ti["map_index"])
            if ti["state"] and seen.get(key) != ti["state"]:
                seen[key] = ti["state"]
                label = ti["task_id"] + (f"[{ti['map_index']}]" if ti["map_index"] >= 0 else "")
                print(f"  {time.strftime('%H:%M:%S')}  {label:34s} {ti['state']}", flush=True)
    return show


def main() -> int:
    preset = os.environ.get("MODEL") or "tabular"
    if preset not in PRESETS:
        print(f"MODEL must be one of {', '.join(PRESETS)}, got {preset!r}", file=sys.stderr)
        return 2
    conf = {**PRESETS[preset], **json.loads(os.environ.get("DEMO_CONF", "{}"))}
    client = AirflowClient(f"http://127.0.0.1:{os.environ.get('AIRFLOW_PORT', '8080')}")
    client.wait_for_dag()
    run_id = client.trigger(conf)
    print(f"Triggered tune_train_serve run {run_id} with {json.dumps(conf)}")
    started = time.monotonic()
    state = client.wait(run_id, timeout=3 * 3600, on_poll=_progress())
    print(f"\nRun {state} in {time.monotonic() - started:.0f} s")
    # every trial, the plots, the candidates and what shipped, in the Airflow UI
    print(f"Tuning results: http://127.0.0.1:{os.environ.get('AIRFLOW_PORT', '8080')}/dags/tune_train_serve/runs/"
          f"{quote(run_id, safe='')}/plugin/tune-serve-run\n")

    plan = client.xcom(run_id, "validate_params") or {}
    # whether a previous run of the model seeded the search (the chief's word), or why not
    search = client.xcom(run_id, "tuning.wait_oracle") or {}
    print(f"Search: {(search.get('warm_start') or {}).get('note') or plan.get('warm_start') or 'not run'}")
    top = client.xcom(run_id, "aggregate_top_n") or []
    print("Leaderboard (top-N trials of the search):")
    objective = plan.get("objective", {}).get("name", "objective")
    for entry in top:
        print(f"  rank {entry['rank']}  {objective} {entry['objective']:9.4g}  trial {entry['trial_id']}  "
              f"{json.dumps(entry['hyperparameters'])}")
    prepared = client.xcom(run_id, "prepare_data") or {}
    if prepared.get("task"):
        print(f"\nTask: {prepared['task']}: {prepared.get('task_reason')}"
              + (f", classes {prepared['label_vocabulary']}" if prepared.get("label_vocabulary") else ""))

    print("\nEvaluation (TFMA on the held-out split):")
    for rank in range(len(top)):
        e = client.xcom(run_id, "evaluation.evaluate", rank)
        if not e:
            print(f"  rank {rank}: no evaluation")
            continue
        reasons = "; ".join(e.get("reasons") or [])
        overall = e["overall"]
        scores = (f"MAE {overall['mae']:.2f}  MSE {overall['mse']:.0f}" if "mae" in overall else
                  "  ".join(f"{k} {overall[k]:.3f}" for k in ("auc", "accuracy", "precision", "recall", "calibration")
                            if isinstance(overall.get(k), (int, float))))
        print(f"  rank {rank}: {scores}  "
              f"{'BLESSED' if e['blessed'] else 'NOT blessed'} ({reasons})  report: {e['report']}")

    deployed = client.xcom(run_id, "serving.deploy_serving")
    instance = prepared.get("sample_instance")
    if not deployed or deployed.get("action") != "publish":
        summary = client.xcom(run_id, "summarize") or {}
        print(f"\n{summary.get('outcome') or 'Nothing deployed (no blessed candidate, or the deployment failed).'}")
        # a run that ships nothing leaves the version serving as it was: show that it still answers
        url = (deployed or {}).get("url") or f"{_serving_url()}/v1/models/{conf['model_name']}:predict"
        response = httpx.post(url, json={"instances": [instance]}, timeout=30) if instance else None
        if response is not None and response.status_code == 200:
            print(f"\nThe version serving before this run still serves:\nPOST {url}\n"
                  f"  {{\"instances\": [{json.dumps(instance)}]}}\n  -> {response.text.strip()}  "
                  f"(true {prepared.get('sample_label', '?')})")
        return 0 if state == "success" else 1
    metric = deployed.get("eval_metric") or {"name": "mae", "value": deployed.get("eval_mae")}
    print(f"\nServing {deployed['model_name']} version {deployed['version']}: the rank {deployed['candidate_rank']} "
          f"candidate, eval {metric['name']} {metric['value']:.4g} (previous version: {deployed['previous_version']})\n"
          f"  at {deployed['url']}")
    response = httpx.post(deployed["url"], json={"instances": [instance]}, timeout=30)
    response.raise_for_status()
    print(f"\nPOST {deployed['url']}\n  {{\"instances\": [{json.dumps(instance)}]}}\n"
          f"  -> {response.text.strip()}  (true {prepared.get('sample_label', '?')})")
    print(f"\nAirflow UI: http://127.0.0.1:{os.environ.get('AIRFLOW_PORT', '8080')}/dags/tune_train_serve  "
          "(`make stop` stops Airflow and the model server)")
    return 0 if state == "success" else 1


def _serving_url() -> str:
    from tune_serve.local import server

    return server.base_url()


if __name__ == "__main__":
    sys.exit(main())
