"""Warm start, the Airflow side: find the previous successful run of the same model under the
storage root, and say in the plan whether its trials will seed this search.

The previous run is found on storage, not in a run's conf: the newest run folder under
`{storage_root}/runs/` (other than this one) whose `summary.json` is for the same `model_name`,
has no failed step, and whose search finished (`tuning/oracle_result.json`). Its location is
built from the storage root and the folder's name, and checked to be a direct child of the runs
folder, so the chief is never handed a path from outside the storage root. The chief applies
the full rule (tune_contract.warm_start, with both feature specs); the plan checks what it can
know before `prepare`: the search itself.
"""
from __future__ import annotations

from typing import Any, TypedDict

from tune_contract import layout
from tune_contract import warm_start as rule
from tune_serve import storage


class WarmStart(TypedDict):
    run_root: str | None  # the previous run's root, for the chief's --warm-start-from; None: none
    note: str  # what the plan says


def _json(path: Any) -> Any | None:
    import json

    try:
        return json.loads(path.read_text()) if path.exists() else None
    except ValueError:
        return None


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and not name.startswith(".") and "/" not in name \
        and "\\" not in name and "\x00" not in name


def previous_run(storage_root: str, model_name: str, run_id: str) -> tuple[str, dict] | None:
    """(run id, its search.json) of the newest successful run of `model_name` other than `run_id`."""
    runs = storage.path(layout.runs_dir(storage_root))
    if not runs.exists():
        return None
    found = []
    for folder in runs.iterdir():
        name = folder.name
        if name == run_id or not _plain_name(name):
            continue
        summary = _json(folder / layout.SUMMARY_FILE)
        if not summary or summary.get("model_name") != model_name or summary.get("failed_steps"):
            continue
        search = _json(folder / layout.TUNING_DIR / layout.SEARCH_FILE)
        if search is None or not (folder / layout.TUNING_DIR / layout.ORACLE_RESULT_FILE).exists():
            continue
        finished = summary.get("finished_at")
        if not isinstance(finished, (int, float)):
            finished = (folder / layout.SUMMARY_FILE).stat().st_mtime
        found.append((float(finished), name, search))
    if not found:
        return None
    _, name, search = max(found)
    return name, search


def under_runs(storage_root: str, run_root: str) -> bool:
    """Whether `run_root` is a run folder directly under the storage root's runs folder."""
    prefix = layout.runs_dir(storage_root).rstrip("/") + "/"
    return run_root.startswith(prefix) and _plain_name(run_root[len(prefix):])


def decide(enabled: bool, storage_root: str, model_name: str, run_id: str, current: dict) -> WarmStart:
    """`current`: this run's search identity (as the chief's search.json has it)."""
    if not enabled:
        return {"run_root": None, "note": rule.note(None, why_not="turned off (warm_start=false)")}
    if current.get("objective_function"):
        return {"run_root": None, "note": rule.note(None, why_not="a benchmark objective")}
    try:
        found = previous_run(storage_root, model_name, run_id)
    except Exception as exc:  # a warm start is an optimisation: an unreadable past never stops a run
        why = f"the previous runs could not be read ({type(exc).__name__}: {exc})".splitlines()[0]
        return {"run_root": None, "note": rule.note(None, why_not=why)}
    if found is None:
        return {"run_root": None,
                "note": rule.note(None, why_not=f"no earlier successful run of {model_name}")}
    name, search = found
    try:
        problem = rule.search_problem(search, current)
    except Exception as exc:  # whatever the previous run's search.json holds, this run goes on cold
        problem = f"its search.json could not be compared ({type(exc).__name__}: {exc})".splitlines()[0]
    if problem:
        return {"run_root": None, "note": rule.note(name, why_not=f"run {name}: {problem}")}
    root = layout.run_root(storage_root, name)
    if not under_runs(storage_root, root):  # never reached with the names accepted above; kept as the rule
        return {"run_root": None,
                "note": rule.note(name, why_not=f"run {name} is not under the storage root")}
    if rule.declared_by_model(current):
        return {"run_root": root, "note": rule.after_prepare_note(name)}
    return {"run_root": root, "note": f"warm start from run {name} (its completed trials in the new space, "
                                      "if its feature spec matches: checked by the chief after prepare)"}
