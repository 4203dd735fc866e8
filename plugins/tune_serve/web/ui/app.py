"""The run view's routes, mounted in Airflow's API server at /tune-serve-view.

Access is the artifact viewer's: Airflow's auth manager must grant the caller (bearer token
or the UI's `_token` cookie) read access to the task logs of tune_train_serve, on every route,
the vendored scripts included. Airflow's UI shows the pages inside its own frame
(`external_views` in the plugin): /runs/{run_id} from a run's page, /runs from the DAG's.
"""
from __future__ import annotations

import logging
from pathlib import Path

from fastapi import Depends, FastAPI, HTTPException
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse

from tune_contract import layout
from tune_serve.web import airflow_runs
from tune_serve.web.artifacts import require_task_log_access
from tune_serve.web.ui import page, run_state
from tune_serve.web.ui import page as ui_page
from tune_serve.workflow import backend, run_note

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
# Only these files, by name: a URL never becomes a path.
ASSETS = {name: STATIC / folder / name for folder, name in (
    ("vega", "vega.min.js"), ("vega", "vega-lite.min.js"), ("vega", "vega-embed.min.js"), ("", "render.js"))}
# Scripts only from this app; Vega compiles its expressions with Function (unsafe-eval); the spec's
# data is inline, so nothing is fetched (connect-src 'none'); only Airflow may frame the page. Scripts
# are not the only harm of markup a crafted file might slip in: no form posts anywhere, no <base>.
CONTENT_SECURITY_POLICY = ("default-src 'none'; script-src 'self' 'unsafe-eval'; "
                           "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'none'; "
                           "form-action 'none'; frame-ancestors 'self'; base-uri 'none'")

app = FastAPI(title="tune_serve view", dependencies=[Depends(require_task_log_access)],
              docs_url=None, redoc_url=None, openapi_url=None)


@app.middleware("http")
async def _headers(request, call_next):
    try:
        response = await call_next(request)
    except Exception:  # a bug or a stored file nobody foresaw: still an answer with the headers below
        log.exception("run view: %s failed", request.url.path)
        response = PlainTextResponse("internal error; the API server's log says why", status_code=500)
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Cache-Control"] = "no-store" if "/static/" not in request.url.path else "max-age=3600"
    return response


@app.exception_handler(HTTPException)
async def _as_page(request, exc: HTTPException) -> HTMLResponse:
    """A refusal is a page of one sentence in the run's tab, never raw JSON (and never a path)."""
    return HTMLResponse(page.message(str(exc.detail)), status_code=exc.status_code)


@app.get("/static/{name}")
def asset(name: str) -> FileResponse:
    if name not in ASSETS:
        raise HTTPException(404, f"no asset {name!r}")
    return FileResponse(ASSETS[name], media_type="text/javascript")


@app.get("/runs/{run_id}", response_class=HTMLResponse)
def run_view(run_id: str, sort: str = "objective", desc: int = 0) -> HTMLResponse:
    """Any run's page, ended or not: before tuning, during it, after a failure, with what exists."""
    run_state.run_root(run_id)  # 400 for what is no run id
    try:
        state = run_state.load(run_id)
        facts = airflow_runs.facts(run_id)  # its state, who cancelled it (Airflow's own records)
        if not state.found and facts is None and not state.failures:
            return HTMLResponse(page.unknown(run_id), status_code=404)
        model = (state.summary or {}).get("model_name")
        model = model if isinstance(model, str) else None
        versions = run_state.model_versions(model) if model else []
        outcome = run_note.outcome(state.summary,
                                   [c["evaluation"] for c in state.candidates if c["evaluation"]],
                                   facts, state.failures)
        return HTMLResponse(page.render(state, versions, sort, bool(desc),
                                        labels=_labels(model) if model else {}, outcome=outcome, facts=facts))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        # this run's files do not have the contract's shape: its own view says so; no other's is touched
        log.warning("run view of %s: malformed stored results: %r", run_id, exc)
        raise HTTPException(422, f"the stored results of run {run_id!r} "
                                 "do not have the expected form") from None


def _labels(model: str) -> dict[str, int] | None:
    """The serving labels now, asked of the platform that serves (never read from its files):
    None when it cannot say (the view still shows the deployment history)."""
    try:
        return backend.current().version_labels(model)
    except Exception as exc:  # a cluster out of reach must not take the view down
        log.warning("serving labels of %s unavailable: %s", model, exc)
        return None


@app.get("/runs", response_class=HTMLResponse)
def runs(sort: str = "started", desc: int = 1, page: int = 1) -> HTMLResponse:
    """The DAG's runs, newest first, a page at a time (the DAG page's entry): Airflow's database
    sorts and pages them (one query, whatever the number of runs); each run of the page adds
    its summary.json, and each model its labels now."""
    sort = sort if sort in airflow_runs.SORTS else "started"
    page = max(1, page)
    found = airflow_runs.runs(sort, bool(desc), (page - 1) * ui_page.PAGE_SIZE, ui_page.PAGE_SIZE)
    labels: dict[str, dict[str, int] | None] = {}
    rows = []
    for run in (found or (0, []))[1]:
        summary = _summary(str(run["run_id"]))
        model = summary.get("model_name") if isinstance(summary.get("model_name"), str) else None
        if model and isinstance(summary.get("deployed"), dict) and model not in labels:
            labels[model] = _labels(model)
        rows.append((run, summary, labels.get(model) if model else None))
    return HTMLResponse(ui_page.runs_list(rows if found else None, found[0] if found else 0, page, sort,
                                          bool(desc)))


def _summary(run_id: str) -> dict:
    """A run's summary.json, or {} (none yet, unreadable, or a run id that names no folder)."""
    try:
        return run_state.read_mapping(layout.summary(run_state.run_root(run_id)))
    except HTTPException:
        return {}
