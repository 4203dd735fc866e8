"""From a run's parameters to the trainer flags of every pod task.

Kept out of the DAG file so it is plain, testable Python; the DAG only wires the lists
this module returns into the pod operators.
"""
from __future__ import annotations

import json
from typing import Any

from tune_serve import config
from tune_serve.params import patience


def run_root(run_id: str) -> str:
    return f"{config.storage_root().rstrip('/')}/runs/{run_id}"


def _optional(flag: str, value: Any) -> list[str]:
    if value is None or value == [] or value == "":
        return []
    if isinstance(value, (dict, list)):
        value = json.dumps(value, separators=(",", ":"))
    return [flag, str(value)]


def build_plan(conf: dict[str, Any], run_id: str) -> dict[str, Any]:
    root = run_root(run_id)
    features = conf.get("features")
    function = conf.get("objective_function")
    objective = "value" if function else conf["objective"]
    search = [
        "--run-root", root,
        "--algorithm", conf["algorithm"],
        *_optional("--search-space", conf.get("search_space")),
        "--objective", objective, "--direction", "min" if function else conf["direction"],
        "--max-trials", str(conf["max_trials"]),
        "--executions-per-trial", str(conf["executions_per_trial"]),
        "--epochs", str(conf["tuning_epochs"]),
        "--seed", str(conf["seed"]),
        *(["--objective-function", function] if function else []),
    ]
    return {
        "run_id": run_id,
        "run_root": root,
        "model_name": conf["model_name"],
        "num_tuners": conf["num_tuners"],
        "top_n": conf["top_n"],
        "objective": {"name": objective, "direction": "min" if function else conf["direction"]},
        "objective_function": function,
        "prepare": [
            "--run-root", root, "--source", conf["source"],
            *_optional("--label", conf.get("label")),
            *_optional("--features", ",".join(features) if features else None),
            *_optional("--feature-spec", conf.get("feature_spec")),
            "--eval-fraction", str(conf["eval_fraction"]),
            "--seed", str(conf["seed"]),
            *_optional("--sample-rows", conf.get("sample_rows")),
        ],
        "oracle": [
            *search,
            "--lease-seconds", str(conf["tuner_lease_seconds"]),
            "--standby-tuners", str(conf["standby_tuners"]),
            "--deadline-seconds", str(conf["tuning_deadline_minutes"] * 60),
        ],
        # a healthy tuner renews its lease four times per lease, so one slow RPC never costs it
        "tune": [*search, "--heartbeat-seconds", str(_heartbeat_seconds(conf["tuner_lease_seconds"])),
                 *(["--sleep-seconds", str(conf.get("trial_sleep_seconds", 1.0))]
                   if function == "sleep" else [])],
        "train": [
            "--run-root", root, "--epochs", str(conf["training_epochs"]),
            "--patience", str(patience(conf)),
            "--objective", conf["objective"], "--direction", conf["direction"],
            "--seed", str(conf["seed"]),
        ],
        "evaluate": [
            "--run-root", root,
            *_optional("--mae-upper-bound", conf.get("mae_upper_bound")),
            *_optional("--max-mae-increase", conf.get("max_mae_increase")),
        ],
    }


def tuner_arguments(plan: dict, oracle_address: str) -> list[list[str]]:
    """One argument list per tuner; the id follows the map index, so a retried tuner
    keeps its id and the oracle hands its unfinished trial back."""
    return [[*plan["tune"], "--tuner-id", f"tuner-{i}", "--oracle-address", oracle_address]
            for i in range(plan["num_tuners"])]


def training_arguments(plan: dict, leaderboard: list[dict]) -> list[list[str]]:
    return [[*plan["train"], "--rank", str(entry["rank"]), "--trial-id", str(entry["trial_id"]),
             "--hyperparameters", json.dumps(entry["hyperparameters"], separators=(",", ":"))]
            for entry in leaderboard]


def evaluation_arguments(plan: dict, trained: list[dict], baseline_model: str | None) -> list[list[str]]:
    return [[*plan["evaluate"], "--rank", str(model["rank"]), "--model-path", model["model_path"],
             *_optional("--baseline-model-path", baseline_model)]
            for model in trained]


def _heartbeat_seconds(lease_seconds: float) -> float:
    return max(1.0, min(10.0, lease_seconds / 4))
