"""What a run stored, gathered for the view: every trial of the search, the candidates, what shipped.

Everything is read through the artifact viewer's `resolve`, so nothing outside the storage
root is ever opened, and a run id from the URL is one path component, never a path.
Sources (docs/contracts.md): `{run_root}/tuning/oracle_result.json` (the chief's result: every
trial it ended, ranked, and the incomplete ones), `{run_root}/tuning/oracle.json` (the Keras
Tuner project's state, whose `leases.handoffs` counts how often a trial lost its tuner),
`{run_root}/summary.json` (top N, verdicts, what was deployed), and per candidate
`models/{rank}/training.json`, `models/{rank}/logs/history.csv`, `eval/{rank}/evaluation.json`.
"""
from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from fastapi import HTTPException

from tune_contract import layout
from tune_serve import config
from tune_serve.web.artifacts import resolve
from tune_serve.workflow import failures, leaderboard, summaries

COMPLETED, RESUMED, HANDED_OVER, LOST = "completed", "resumed after preemption", "handed over", "lost"
# a trial of a search still under way (read from the Keras Tuner project, not the chief's result)
RUNNING = "running"
# Airflow's own limit on a run id (the dag_run.run_id column): a longer one names no run
MAX_RUN_ID = 250
PRUNED, FAILED = "pruned", "failed"


def run_root(run_id: str) -> str:
    """The run's folder; 400 for a run id that is not a single path component."""
    if (not run_id or len(run_id) > MAX_RUN_ID or "/" in run_id or "\\" in run_id or "\x00" in run_id
            or run_id in (".", "..")):
        raise HTTPException(400, f"run_id: not a run id: {run_id!r}")
    return layout.run_root(config.storage_root(), run_id)


def read_json(uri: str) -> Any | None:
    try:
        _, path = resolve(uri)
        return json.loads(path.read_text()) if path.exists() else None
    except (ValueError, OSError):
        return None  # a file being rewritten (the next load shows it), or a name too long to exist


def read_mapping(uri: str) -> dict:
    """A stored JSON object; anything else (missing, unreadable, a list) is an empty one."""
    data = read_json(uri)
    return data if isinstance(data, dict) else {}


def read_text(uri: str) -> str | None:
    try:
        _, path = resolve(uri)
        return path.read_text() if path.exists() else None
    except (ValueError, OSError):
        return None


def shown(uri: str) -> str:
    """A stored location as a viewer may see it: a bucket's URI as it is, a local path only
    below the storage root (`$TUNE_SERVE_STORAGE_ROOT/runs/…`): never the server's own paths."""
    root = config.storage_root().rstrip("/")
    if "://" in uri and not uri.startswith("file://"):
        return uri
    path = uri.removeprefix("file://")
    if path == root or path.startswith(root + "/"):
        return "$TUNE_SERVE_STORAGE_ROOT" + path[len(root):]
    return "(a path on the server)"


def trial_order(trial: dict) -> tuple:
    """Creation order: Keras Tuner numbers its trials ("0", "1", ..., "10"); others by name."""
    trial_id = trial["trial_id"]
    return (0, int(trial_id), "") if trial_id.isdigit() else (1, 0, trial_id)


def trial_status(trial: dict, completed: bool, handoffs: int, live: bool = False) -> str:
    if not completed:
        if live and trial.get("status") == "RUNNING":
            return RUNNING
        return FAILED if trial.get("failure") else LOST  # failure: a reason its tuner gave (a diverged loss)
    if trial.get("pruned"):
        return PRUNED
    if handoffs:
        return HANDED_OVER
    if trial.get("resumed_from_epoch"):
        return RESUMED
    return COMPLETED


@dataclass
class RunState:
    run_id: str
    root: str
    objective: dict = field(default_factory=lambda: {"name": "objective", "direction": "min"})
    trials: list[dict] = field(default_factory=list)  # every trial, in trial-id order
    max_trials: int | None = None
    lost_tuners: list[str] = field(default_factory=list)
    deadline_hit: bool = False
    search_notes: list[str] = field(default_factory=list)  # early stopping, warm start
    summary: dict | None = None
    candidates: list[dict] = field(default_factory=list)
    live: bool = False  # no result from the chief yet: the trials its Keras Tuner project holds so far
    # the failed tasks' own reasons (tune_serve.workflow.failures)
    failures: dict[str, dict] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return bool(self.trials) or self.summary is not None

    @property
    def completed(self) -> list[dict]:
        return [t for t in self.trials if t["status"] != LOST and t.get("objective") is not None]

    @property
    def hyperparameter_names(self) -> list[str]:
        names: list[str] = []
        for trial in self.trials:
            names += [n for n in trial.get("hyperparameters") or {} if n not in names]
        return names


def load(run_id: str) -> RunState:
    root = run_root(run_id)
    state = RunState(run_id, root)
    result = read_mapping(layout.oracle_result(root))
    project = read_mapping(layout.kt_oracle(root))
    handoffs = (project.get("leases") or {}).get("handoffs") or {}
    state.summary = read_mapping(layout.summary(root)) or None
    top = {str(e["trial_id"]): e["rank"] for e in (state.summary or {}).get("leaderboard") or [] if e}
    if result.get("objective"):
        state.objective = result["objective"]
    state.max_trials, state.lost_tuners = result.get("max_trials"), result.get("lost_tuners") or []
    state.deadline_hit = bool(result.get("deadline_hit"))
    state.search_notes = summaries.search_notes(result)
    rows = ([(t, True) for t in result.get("trials") or []]
            + [(t, False) for t in result.get("incomplete") or []])
    if not result:  # the search is under way (or ended without a result): what its project holds so far
        rows = live_trials(root)
        state.live = bool(rows)
        search = read_mapping(layout.join(layout.tuning_dir(root), layout.SEARCH_FILE))
        if search.get("objective"):
            state.objective = {"name": search["objective"], "direction": search.get("direction") or "min"}
    for trial, completed in rows:
        trial_id = str(trial["trial_id"])
        n_handoffs = int(handoffs.get(trial_id, 0))
        state.trials.append({**trial, "trial_id": trial_id, "handoffs": n_handoffs,
                             "status": trial_status(trial, completed, n_handoffs, state.live),
                             "top_rank": top.get(trial_id)})
    state.trials.sort(key=trial_order)
    for number, trial in enumerate(state.trials):
        trial["number"] = number
    state.candidates = _candidates(root, state.summary)
    state.failures = failures.read(root, opener=lambda uri: resolve(uri)[1])
    return state


def live_trials(root: str) -> list[tuple[dict, bool]]:
    """The trials of a search still under way, as records (docs/contracts.md: a trial): Keras
    Tuner's `trial_{id}/trial.json` (values, score, status) and the facts the tuner that finished
    it wrote beside it (`outcome-{tuner_id}.json`); with whether each completed."""
    try:
        _, tuning = resolve(layout.tuning_dir(root))
        folders = [d for d in tuning.iterdir() if d.name.startswith("trial_")] if tuning.exists() else []
    except (ValueError, OSError):
        return []
    rows = []
    for folder in folders:
        try:
            state = json.loads((folder / "trial.json").read_text())
            outcomes = [o for o in folder.iterdir()
                        if o.name.startswith("outcome-") and o.name.endswith(".json")]
            outcome = json.loads(outcomes[0].read_text()) if outcomes else {}
        except (ValueError, OSError):
            continue
        if not isinstance(state, dict) or not isinstance(outcome, dict):
            continue
        values = ((state.get("hyperparameters") or {}).get("values") or {}) \
            if isinstance(state.get("hyperparameters"), dict) else {}
        status = state.get("status")
        score = state.get("score")
        completed = status == "COMPLETED" and isinstance(score, (int, float)) and math.isfinite(score)
        rows.append(({
            "trial_id": str(state.get("trial_id") or folder.name.removeprefix("trial_")),
            "hyperparameters": {k: v for k, v in values.items() if not str(k).startswith("tuner/")}
            if isinstance(values, dict) else {},
            "objective": float(score) if completed and isinstance(score, (int, float)) else None,
            "status": status,
            "epochs": outcome.get("epochs"), "seconds": outcome.get("seconds"),
            "tuner_id": outcomes[0].name[len("outcome-"):-len(".json")] if outcomes else None,
            "resumed_from_epoch": outcome.get("resumed_from_epoch", 0),
            "started_at": outcome.get("started_at"), "ended_at": outcome.get("ended_at"),
            **({"pruned": outcome["pruned"]} if outcome.get("pruned") else {}),
            **({"failure": outcome["failure"]} if outcome.get("failure") else {})}, completed))
    return rows


def _candidates(root: str, summary: dict | None) -> list[dict]:
    if not summary:
        return []
    deployed = summary.get("deployed") or {}
    verdicts = {e["rank"]: e for e in summary.get("evaluations") or [] if e}
    candidates = []
    for entry in summary.get("leaderboard") or []:
        rank = entry["rank"]
        evaluation = read_mapping(layout.evaluation_result(root, rank)) or verdicts.get(rank) or {}
        verdict = verdicts.get(rank) or evaluation
        candidates.append({
            "rank": rank,
            "trial_id": entry.get("trial_id"),
            "hyperparameters": entry.get("hyperparameters") or {},
            "training": read_mapping(layout.training_result(root, rank)),
            "history": history(read_text(layout.history(root, rank))),
            "evaluation": evaluation,
            "blessed": verdict.get("blessed"),
            "reasons": leaderboard.reasons(verdict),
            "deployed_version": deployed.get("version") if deployed.get("candidate_rank") == rank else None,
        })
    return candidates


def history(text: str | None) -> list[dict]:
    """Keras CSVLogger rows, one per epoch; an epoch logged again after a resume keeps its last row."""
    if not text:
        return []
    rows: dict[int, dict] = {}
    for row in csv.DictReader(io.StringIO(text)):
        try:
            rows[int(row.pop("epoch"))] = {k: float(v) for k, v in row.items() if v not in ("", None)}
        except (KeyError, ValueError):
            continue
    return [{"epoch": epoch, **values} for epoch, values in sorted(rows.items())]


def model_versions(model_name: str) -> list[dict]:
    """Every version of `model_name` some run deployed, newest first, from the runs' summaries
    (the storage root is all this view reads; the serving root stays the serving's own)."""
    _, runs = resolve(layout.runs_dir(config.storage_root()))
    versions: list[dict] = []
    if not runs.exists():
        return versions
    for run in runs.iterdir():
        # every run's summary is read here: one that is not what the contract says is left out,
        # so it never takes another run's view down
        summary = read_mapping(layout.summary(layout.run_root(config.storage_root(), run.name)))
        deployed = summary.get("deployed")
        if not isinstance(deployed, dict) or deployed.get("model_name") != model_name:
            continue
        if isinstance(deployed.get("version"), int) and not isinstance(deployed["version"], bool):
            versions.append({"run_id": str(summary.get("run_id") or run.name), **deployed})
    versions.sort(key=lambda v: int(v["version"]), reverse=True)
    return versions
