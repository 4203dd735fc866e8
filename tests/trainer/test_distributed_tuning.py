"""Distributed tuning with real `oracle`/`tune` processes on 127.0.0.1.

Each scenario asserts on the results and on the state left under `{run_root}/tuning/`:
every trial completed exactly once, by whom, from which epoch. Kills happen at observed
states (a trial held with an epoch on storage), with SIGSTOP first so the state the kill
leaves is the state checked. The `sleep` objective keeps trial timing deterministic; the
SIGKILL case runs the real Keras model (BackupAndRestore).
"""
from __future__ import annotations

import json
import shutil
import signal
import time

import pytest
from tuning_helpers import Search, finished_by_workers, wait_for

SLEEP = ["--objective-function", "sleep"]
FAST_WORKER = ["--heartbeat-seconds", "0.5"]


@pytest.fixture
def searches():
    started: list[Search] = []
    yield started
    for search in started:
        search.stop_all()


def _search(searches, tmp_path, *flags) -> Search:
    search = Search(tmp_path, tmp_path / "runs" / "r1", *flags)
    searches.append(search)
    return search


def _freeze_and_kill(proc) -> None:
    proc.signal(signal.SIGSTOP)  # callers read the state the process leaves behind in between
    proc.signal(signal.SIGKILL)


def _holding(search: Search, tuner_ids, done) -> tuple[str, str] | None:
    """(tuner id, trial id) of the first tuner whose trial satisfies `done(trial_id)`."""
    ongoing = search.oracle_state()["ongoing_trials"]
    return next(((t, ongoing[t]) for t in tuner_ids if t in ongoing and done(ongoing[t])), None)


def _assert_each_trial_once(oracle: dict, *tuned: dict) -> dict:
    ids = [t["trial_id"] for t in oracle["trials"]]
    assert len(ids) == len(set(ids)) == oracle["completed"] == oracle["max_trials"], oracle
    assert oracle["incomplete"] == []
    assert all(t["status"] == "COMPLETED" and t["objective"] is not None for t in oracle["trials"])
    by_worker = finished_by_workers(*tuned)
    assert by_worker == {i: [next(t["tuner_id"] for t in oracle["trials"] if t["trial_id"] == i)] for i in ids}, by_worker
    chief_view = {t["trial_id"]: t for t in oracle["trials"]}
    for result in tuned:  # a worker reports its trials exactly as the chief does
        for trial in result["trials"]:
            assert trial == chief_view[trial["trial_id"]]
    objectives = [t["objective"] for t in oracle["trials"]]
    assert objectives == sorted(objectives), "trials must be ranked best (lowest) first"
    return {t["trial_id"]: t for t in oracle["trials"]}


def _run_times(search: Search) -> dict:
    return dict(search.oracle_state()["run_times"])


# -- the chief's oracle in-process: leases, fencing, deadline, reload -----------------------------


def _oracle(tmp_path, max_trials=3, lease=5.0, deadline=None, max_handoffs=2, standby=None):
    from tune_contract.steps import SearchArgs

    from trainer.tuning.distributed.oracles import make_oracle
    from trainer.tuning.settings import from_args

    settings = from_args(SearchArgs(run_root=str(tmp_path), algorithm="random", objective_function="sleep",
                                    max_trials=max_trials, epochs=2, seed=0, early_stopping="off"))
    oracle = make_oracle(settings, lease_seconds=lease, deadline_seconds=deadline, max_handoffs=max_handoffs,
                         standby_tuners=standby)
    oracle._set_project_dir(str(tmp_path), "tuning")
    if (tmp_path / "tuning" / "oracle.json").exists():
        oracle.reload()
    return settings, oracle


def _silence(oracle, tuner_id):
    oracle._last_seen[tuner_id] -= oracle.lease_seconds + 1


def _complete(oracle, tuner_id, trial_id, value=0.5):
    oracle.update_trial_from(tuner_id, trial_id, {"value": value})
    trial = oracle.trials[trial_id]
    trial.status = "COMPLETED"
    oracle.end_trial_from(tuner_id, trial)


def test_lost_lease_hands_the_trial_over_and_fences_the_old_holder(tmp_path):
    from trainer.tuning.distributed.oracles import NotHolder

    _, oracle = _oracle(tmp_path)
    a, b = oracle.create_trial("a").trial_id, oracle.create_trial("b").trial_id
    _silence(oracle, "a")
    assert oracle.expire_leases() == ["a"] and oracle.lost_tuners == ["a"]
    assert oracle.create_trial("c").trial_id == a  # handed over before any new trial
    with pytest.raises(NotHolder):  # "a" wakes up and reports: refused
        oracle.update_trial_from("a", a, {"value": 0.0})
    comeback = oracle.create_trial("a")  # "a" restarted after its lease expired: a new trial
    assert comeback.trial_id not in (a, b)
    _complete(oracle, "c", a, value=0.25)
    _complete(oracle, "c", a, value=0.25)  # a re-sent end (chief restart) changes nothing
    assert oracle.end_order == [a] and oracle.finished_by == {a: "c"} and oracle.trials[a].score == 0.25


def test_a_trial_that_keeps_losing_its_worker_fails(tmp_path):
    _, oracle = _oracle(tmp_path, max_handoffs=1)
    trial_id = oracle.create_trial("a").trial_id
    for tuner_id in ("a", "b"):
        if tuner_id != "a":
            assert oracle.create_trial(tuner_id).trial_id == trial_id
        _silence(oracle, tuner_id)
        oracle.expire_leases()
    assert oracle.trials[trial_id].status == "FAILED" and trial_id in oracle.end_order
    assert oracle.lost_tuners == ["a", "b"]


def test_idle_while_another_trial_may_come_back_then_stop(tmp_path):
    _, oracle = _oracle(tmp_path, max_trials=1)
    trial_id = oracle.create_trial("a").trial_id
    assert oracle.create_trial("b").status == "IDLE"  # "a" may be lost: keep "b" around
    _complete(oracle, "a", trial_id)
    assert not oracle.finished()  # "b" is still waiting for an answer
    assert oracle.create_trial("b").status == "STOPPED"
    assert oracle.create_trial("a").status == "STOPPED"
    assert oracle.finished() and not oracle.deadline_hit


def test_only_the_standby_workers_wait_at_the_tail(tmp_path):
    """With nothing left to hand out, one worker waits (a lost trial may need it); the rest
    stop, so their pods are released while the last trial runs."""
    _, oracle = _oracle(tmp_path, max_trials=1, standby=1)
    trial_id = oracle.create_trial("a").trial_id
    assert oracle.create_trial("b").status == "IDLE"
    assert oracle.create_trial("c").status == "STOPPED"
    assert oracle.create_trial("b").status == "IDLE"  # asking again keeps its place
    _silence(oracle, "a")
    assert oracle.expire_leases() == ["a"]
    assert oracle.create_trial("b").trial_id == trial_id  # the standby takes the lost trial over
    _complete(oracle, "b", trial_id)
    assert oracle.create_trial("b").status == "STOPPED"
    assert oracle.finished() and oracle.finished_by == {trial_id: "b"}


def test_no_standby_worker_ends_the_search_when_the_last_worker_is_lost(tmp_path):
    _, oracle = _oracle(tmp_path, max_trials=1, standby=0)
    oracle.create_trial("a")
    assert oracle.create_trial("b").status == "STOPPED"
    assert not oracle.finished()  # "a" is still running its trial
    _silence(oracle, "a")
    oracle.expire_leases()
    assert oracle.finished() and oracle.lost_tuners == ["a"] and not oracle.end_order


def test_deadline_stops_handing_out_trials(tmp_path):
    from trainer.tuning.oracle_step import build_result

    settings, oracle = _oracle(tmp_path, deadline=60)
    running = oracle.create_trial("a").trial_id
    oracle.started_at -= 61
    assert oracle.create_trial("b").status == "STOPPED"
    assert not oracle.finished()  # the running trial may finish
    _complete(oracle, "a", running)
    assert oracle.create_trial("a").status == "STOPPED"
    assert oracle.finished() and oracle.deadline_hit
    result = build_result(oracle, settings)
    assert result["deadline_hit"] and result["completed"] == 1 and result["max_trials"] == 3


def test_reload_keeps_running_trials_with_their_tuners(tmp_path):
    _, first = _oracle(tmp_path)
    held = {t: first.create_trial(t).trial_id for t in ("a", "b")}
    _, second = _oracle(tmp_path)  # the chief restarted: same directory, overwrite=False
    assert {t: trial.trial_id for t, trial in second.ongoing_trials.items()} == held
    assert second._retry_queue == []
    assert second.create_trial("a").trial_id == held["a"]  # a worker re-asking gets its own trial
    assert second.create_trial("c").trial_id not in held.values()
    _complete(second, "b", held["b"])
    assert second.end_order == [held["b"]]


def test_grid_search_with_two_workers_runs_every_point_once(searches, tmp_path):
    space = json.dumps([{"name": "x", "type": "float", "min": 0, "max": 1, "step": 0.25}])
    search = _search(searches, tmp_path, *SLEEP, "--algorithm", "grid", "--search-space", space,
                     "--max-trials", "5", "--epochs", "2")
    began = time.time()
    chief = search.chief("--lease-seconds", "30")
    workers = [search.worker(f"tuner-{i}", "--sleep-seconds", "0.3", *FAST_WORKER) for i in range(2)]

    oracle = chief.result()
    tuned = [w.result() for w in workers]
    finished = time.time()

    trials = _assert_each_trial_once(oracle, *tuned)
    assert sorted(t["hyperparameters"]["x"] for t in trials.values()) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert trials[oracle["trials"][0]["trial_id"]]["hyperparameters"] == {"x": 0.5}  # the minimum of (x-0.5)^2
    assert all(t["epochs"] == 2 and t["resumed_from_epoch"] == 0 for t in trials.values())
    # wall-clock span of each trial, for the trials-over-time view: inside the search, and at
    # least its two epochs of 0.3 s long
    spans = sorted((t["started_at"], t["ended_at"]) for t in oracle["trials"])
    assert all(began <= start and start + 0.6 <= end <= finished for start, end in spans), (began, spans, finished)
    assert oracle["objective"] == {"name": "value", "direction": "min"}
    assert oracle["lost_tuners"] == [] and oracle["deadline_hit"] is False
    assert _run_times(search) == {i: 1 for i in trials}
    assert search.resume_dirs() == [], "progress of ended trials must be removed"


TABULAR_HYPERPARAMETERS = {"num_layers", "units", "dropout", "learning_rate", "batch_size"}
WIDE_AND_DEEP_HYPERPARAMETERS = {"num_hidden_layers", "hidden_size", "dropout", "cross_bins", "bottleneck",
                                 "learning_rate", "batch_size"}  # and bottleneck_units when bottleneck is on


@pytest.mark.parametrize("model, declared", [
    (None, TABULAR_HYPERPARAMETERS),  # the built-in model
    ("tune_serve_models.wide_and_deep:build", WIDE_AND_DEEP_HYPERPARAMETERS),  # a user model
])
def test_sigkilled_worker_resumes_its_trial_from_the_last_epoch(model, declared, searches, tmp_path, prepared):
    run_root = tmp_path / "runs" / "r1"
    shutil.copytree(prepared["run_root"] / "data", run_root / "data")
    search = _search(searches, tmp_path, "--max-trials", "3", "--epochs", "10", "--seed", "3",
                     *(["--model", model] if model else []))
    chief = search.chief("--lease-seconds", "300")  # the restarted worker must find its trial still held
    workers = {t: search.worker(t, "--heartbeat-seconds", "1") for t in ("tuner-0", "tuner-1")}

    victim, trial_id = wait_for(lambda: _holding(search, workers, lambda i: search.backed_up_epoch(i) >= 1),
                                240, "a worker to back up an epoch of its trial", interval=0.01)
    workers[victim].signal(signal.SIGSTOP)
    backed_up = search.backed_up_epoch(trial_id)
    assert 1 <= backed_up < 10 and not search.epochs_recorded(trial_id)["complete"], "killed too late"
    workers[victim].signal(signal.SIGKILL)
    restarted = search.worker(victim, "--heartbeat-seconds", "1", name=f"{victim}-restarted")

    oracle = chief.result()
    survivor = next(t for t in workers if t != victim)
    tuned = [restarted.result(), workers[survivor].result()]

    trials = _assert_each_trial_once(oracle, *tuned)
    resumed = trials[trial_id]
    assert resumed["tuner_id"] == victim  # the oracle handed the trial back to the same tuner id
    assert resumed["resumed_from_epoch"] == backed_up  # not from epoch 0
    assert resumed["epochs"] == 10
    assert [t["trial_id"] for t in tuned[0]["trials"]].count(trial_id) == 1
    assert all(t["resumed_from_epoch"] == 0 for i, t in trials.items() if i != trial_id)
    for trial in trials.values():  # a conditional hyperparameter is a value of the trials it is active in
        conditional = {"bottleneck_units"} if trial["hyperparameters"].get("bottleneck") else set()
        assert set(trial["hyperparameters"]) == declared | conditional
    assert oracle["lost_tuners"] == []
    assert _run_times(search) == {i: 1 for i in trials}
    assert search.resume_dirs() == [], "the backup of an ended trial must be removed"


def test_lost_worker_trial_goes_to_another_worker_and_the_chief_finishes(searches, tmp_path):
    lease, epochs, seconds_per_epoch = 3.0, 6, 0.5
    search = _search(searches, tmp_path, *SLEEP, "--max-trials", "4", "--epochs", str(epochs))
    chief = search.chief("--lease-seconds", str(lease))
    workers = {t: search.worker(t, "--sleep-seconds", str(seconds_per_epoch), *FAST_WORKER) for t in ("tuner-0", "tuner-1")}

    def started(trial_id):
        return len(search.epochs_recorded(trial_id)["epochs"]) >= 1

    def both_up_one_started():  # the survivor is up: the bound below must not include its start-up
        return len(search.oracle_state()["ongoing_trials"]) == 2 and _holding(search, workers, started)

    victim, trial_id = wait_for(both_up_one_started, 240, "both workers in a trial, one past an epoch")
    workers[victim].signal(signal.SIGSTOP)
    recorded = len(search.epochs_recorded(trial_id)["epochs"])
    assert 1 <= recorded < epochs, "killed too late"
    workers[victim].signal(signal.SIGKILL)
    killed_at = time.monotonic()

    survivor = next(t for t in workers if t != victim)
    oracle = chief.result(timeout=120)
    tuned = workers[survivor].result()

    # Bounded: the lease, then at most every trial again on the one worker left, plus slack.
    bound = lease + 4 * epochs * seconds_per_epoch + 15
    assert chief.ended - killed_at < bound, f"chief took {chief.ended - killed_at:.1f}s after the kill"
    trials = _assert_each_trial_once(oracle, tuned)
    assert oracle["lost_tuners"] == [victim]
    assert trials[trial_id]["tuner_id"] == survivor
    assert trials[trial_id]["resumed_from_epoch"] == recorded  # the survivor continued the lost trial
    assert oracle["deadline_hit"] is False
    assert search.oracle_state()["leases"]["handoffs"] == {trial_id: 1}


def test_restarted_chief_keeps_running_trials_with_their_workers(searches, tmp_path):
    search = _search(searches, tmp_path, *SLEEP, "--max-trials", "4", "--epochs", "6")
    chief = search.chief("--lease-seconds", "60")
    workers = {t: search.worker(t, "--sleep-seconds", "0.5", *FAST_WORKER) for t in ("tuner-0", "tuner-1")}

    def both_running():
        ongoing = search.oracle_state()["ongoing_trials"]
        if set(ongoing) == set(workers) and all(len(search.epochs_recorded(i)["epochs"]) >= 1 for i in ongoing.values()):
            return dict(ongoing)
        return None

    held = wait_for(both_running, 240, "both workers to be inside a trial")
    _freeze_and_kill(chief)
    restarted = search.chief("--lease-seconds", "60", name="chief-restarted")

    oracle = restarted.result()
    tuned = [w.result() for w in workers.values()]

    trials = _assert_each_trial_once(oracle, *tuned)
    for tuner_id, trial_id in held.items():  # finished by the worker that had it, never re-issued
        assert trials[trial_id]["tuner_id"] == tuner_id
        assert trials[trial_id]["resumed_from_epoch"] == 0
    assert _run_times(search) == {i: 1 for i in trials}, "a trial ran twice"
    assert oracle["lost_tuners"] == []
