"""The run view and the trigger form in a real browser (Debian's chromium, driven by Playwright)
against the real local Airflow of the end-to-end run (`happy_run`): what a user sees after it.

Screenshots go to out/ui-screenshots (or $UI_SCREENSHOTS); CI lists them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from conftest import REPO, TINY

pytestmark = pytest.mark.e2e

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SCREENSHOTS = Path(os.environ.get("UI_SCREENSHOTS", REPO / "out" / "ui-screenshots"))
VIEW = "iframe[title='Tuning results']"


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium")
    if chromium is None:
        message = "Debian's chromium is needed: apt-get install -y chromium (.ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def oracle(happy_run):
    client, _, run_id, state = happy_run
    assert state == "success"
    return client.xcom(run_id, "tuning.wait_oracle")


def open_view(page, happy_run):
    """The run's page in Airflow, its "Tuning results" tab, once every plot has rendered."""
    client, env, run_id, _ = happy_run
    page.goto(f"http://127.0.0.1:{env['AIRFLOW_PORT']}/dags/tune_train_serve/runs/{run_id}")
    page.get_by_role("link", name="Tuning results").click()
    view = page.frame_locator(VIEW)
    view.locator("#leaderboard").wait_for(timeout=120_000)
    view.locator("[data-plot]:not([data-rendered])").first.wait_for(state="detached", timeout=60_000)
    assert view.locator("[data-rendered=error]").count() == 0, view.locator("[data-rendered=error]").all_inner_texts()
    return view


def test_leaderboard_rows_are_the_oracles_trials(page, happy_run, oracle):
    client, _, run_id, _ = happy_run
    view = open_view(page, happy_run)
    page.screenshot(path=SCREENSHOTS / "run-view.png", full_page=True)
    rows = view.locator("#leaderboard tbody tr")
    shown = sorted(rows.evaluate_all("rows => rows.map(r => r.dataset.trialId)"))
    assert shown == sorted(str(t["trial_id"]) for t in oracle["trials"] + oracle["incomplete"])
    top = client.xcom(run_id, "aggregate_top_n")
    marked = view.locator("#leaderboard tr.top").evaluate_all("rows => rows.map(r => r.dataset.trialId)")
    assert sorted(marked) == sorted(str(e["trial_id"]) for e in top)
    # sortable: by objective, best first (the default), then the other way round
    objectives = [float(t) for t in view.locator("#leaderboard tbody tr td:nth-child(4)").all_inner_texts() if t]
    assert objectives == sorted(objectives)
    view.get_by_role("link", name="Objective").click()
    view.get_by_role("link", name="Objective ▾").wait_for()  # the page sorted the other way
    objectives = [float(t) for t in view.locator("#leaderboard tbody tr td:nth-child(4)").all_inner_texts() if t]
    assert objectives == sorted(objectives, reverse=True)
    # the whole view on its own, for the README
    page.goto(f"http://127.0.0.1:{happy_run[1]['AIRFLOW_PORT']}/tune-serve-view/runs/{run_id}")
    page.locator("[data-plot]:not([data-rendered])").first.wait_for(state="detached", timeout=60_000)
    page.screenshot(path=SCREENSHOTS / "run-view-full.png", full_page=True)


def test_each_plot_draws_a_mark_per_item(page, happy_run, oracle):
    client, _, run_id, _ = happy_run
    view = open_view(page, happy_run)
    completed = len(oracle["trials"])
    parameters = len({name for t in oracle["trials"] for name in t["hyperparameters"]})

    def marks(plot: str, mark: str) -> int:  # data marks only, not legend symbols
        return view.locator(f"#{plot} g.mark-{mark}.role-mark path").count()

    assert marks("plot-objective", "symbol") == completed
    assert marks("plot-objective", "line") == 1  # best so far
    assert marks("plot-parallel", "line") == completed
    assert marks("plot-scatter", "symbol") == completed * parameters
    assert marks("plot-importance", "rect") == parameters
    assert marks("plot-timeline", "rect") == completed
    for rank in range(TINY["top_n"]):
        assert marks(f"curves-{rank}", "line") == 2, f"candidate {rank}: mae and val_mae by epoch"
    view.locator("#plot-timeline").screenshot(path=SCREENSHOTS / "trials-over-time.png")


def test_run_note_names_the_deployed_version(page, happy_run):
    client, env, run_id, _ = happy_run
    deployed = client.xcom(run_id, "serving.deploy_serving")
    # written by the listener from its own thread a few seconds after the run ends
    deadline, note = time.monotonic() + 120, None
    while not note and time.monotonic() < deadline:
        note = client.dag_run(run_id).get("note")
        time.sleep(0 if note else 2)
    assert note, "the run has no note two minutes after it ended"
    # the outcome line, then (a paragraph of its own) how the search ran
    outcome, _, search = note.partition("\n\n")
    assert outcome.startswith(f"deployed {deployed['model_name']} v{deployed['version']} "
                              f"(candidate {deployed['candidate_rank']}, MAE ")
    assert search.startswith("early stopping: "), note
    view = open_view(page, happy_run)
    assert page.get_by_text(outcome).first.is_visible()  # the run's header, in Airflow's own page
    assert view.locator("#run-outcome").inner_text() == outcome


def test_a_bad_combination_is_refused_in_the_form_without_creating_a_run(page, happy_run):
    client, env, _, _ = happy_run
    runs_before = client.http.get("/dags/tune_train_serve/dagRuns").json()["total_entries"]
    page.goto(f"http://127.0.0.1:{env['AIRFLOW_PORT']}/dags/tune_train_serve")
    page.get_by_role("button", name="Trigger").first.click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_role("button", name="Search").click()
    max_trials = dialog.locator("input[name=element_max_trials]")
    max_trials.fill("0")
    max_trials.press("Tab")
    assert max_trials.input_value() == "0"  # not silently changed to 1
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    dialog.get_by_text("max_trials: 0 is out of range; allowed: 1 to 10,000").wait_for()
    max_trials.fill("3")
    max_trials.press("Tab")
    dialog.get_by_role("button", name="Training").click()
    top_n = dialog.locator("input[name=element_top_n]")
    top_n.fill("5")
    top_n.press("Tab")
    dialog.get_by_role("button", name="Trigger", exact=True).click()
    dialog.get_by_text("top_n (5) must be at most max_trials (3)").wait_for()
    page.screenshot(path=SCREENSHOTS / "trigger-refused.png")
    assert client.http.get("/dags/tune_train_serve/dagRuns").json()["total_entries"] == runs_before


def test_the_runs_list_tells_a_refused_run_from_a_deployed_one(page, happy_run):
    """Issue 28: a run whose parameters validate_params refuses (created through the CLI, which the
    trigger-time check does not see; it fails in seconds) says why in summary.json, its note, the
    runs list and its view; the deployed run beside it shows its version. No new tuning run."""
    client, env, run_id, _ = happy_run
    refused, reason = "e2e-refused", "top_n (3) must be at most max_trials (2)"
    conf = {**TINY, "top_n": 3, "max_trials": 2, "num_tuners": 1}
    cli = ["bash", "-c", 'source "$0" && exec airflow "$@"', str(REPO / "scripts" / "airflow-env.sh")]
    for _ in range(5):
        out = subprocess.run([*cli, "dags", "trigger", "tune_train_serve", "--run-id", refused, "--conf",
                              json.dumps(conf)], env=env, capture_output=True, text=True, timeout=180)
        if "database is locked" not in out.stderr:  # SQLite under load: nothing was done, try again
            break
    assert out.returncode == 0, out.stderr[-2000:]
    assert client.wait(refused, timeout=300) == "failed"
    summary = json.loads((Path(env["TUNE_SERVE_STORAGE_ROOT"]) / "runs" / refused / "summary.json").read_text())
    assert summary["failure"]["task"] == "validate_params" and reason in summary["failure"]["reason"]
    deadline, note = time.monotonic() + 120, None
    while not note and time.monotonic() < deadline:
        note = client.dag_run(refused).get("note")
        time.sleep(0 if note else 2)
    assert note and note.startswith("nothing deployed: validate_params failed: invalid run parameters: ")
    assert reason in note

    page.goto(f"http://127.0.0.1:{env['AIRFLOW_PORT']}/dags/tune_train_serve")
    page.get_by_role("link", name="Tuning runs").click()
    runs = page.frame_locator("iframe[title='Tuning runs']")
    runs.locator("#runs").wait_for(timeout=120_000)
    page.screenshot(path=SCREENSHOTS / "runs-list.png", full_page=True)
    ids = runs.locator("#runs tbody tr").evaluate_all("rows => rows.map(r => r.dataset.runId)")
    assert ids.index(refused) < ids.index(run_id)  # newest first
    failed = runs.locator(f'#runs tr[data-run-id="{refused}"]')
    assert failed.get_attribute("class") == "failed" and "✗ failed" in failed.inner_text()
    assert reason in failed.inner_text()
    deployed = client.xcom(run_id, "serving.deploy_serving")
    happy = runs.locator(f'#runs tr[data-run-id="{run_id}"]').inner_text()
    assert f"{deployed['model_name']} v{deployed['version']}" in happy and " train / " in happy, happy
    # the refused run's own view, from its row: why, at the top, and no path of the server
    failed.get_by_role("link", name=refused).click()
    runs.locator("#run-outcome").wait_for(timeout=60_000)
    outcome = runs.locator("#run-outcome").inner_text()
    assert outcome.startswith("nothing deployed: validate_params failed: ") and reason in outcome
    text = runs.locator("body").inner_text()
    assert env["TUNE_SERVE_STORAGE_ROOT"] not in text and '"detail"' not in text and " yet" not in text
    page.screenshot(path=SCREENSHOTS / "refused-run-view.png", full_page=True)
