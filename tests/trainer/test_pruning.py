"""Early stopping across tuners (issue 12): the rule, the chief's state across a restart, and a
pruned trial through the real chief and two tuners."""
from __future__ import annotations

import pytest
from trainer.tuning.algorithms.pruning import Pruning
from tuning_helpers import Search, chief_oracle

from tune_contract.early_stopping import resolve
from tune_contract.errors import BadInput

# -- which rule a search runs (the contract; the plan and the chief both call it) -----------------

RESOLVED = {
    ("auto", "bayesian"): ("median", "median (auto for bayesian)"),
    ("auto", "tpe"): ("median", "median (auto for tpe)"),
    ("auto", "gp"): ("median", "median (auto for gp)"),
    ("auto", "random"): ("none", "off (auto for random: random search is the anchor: its trials run to the end)"),
    ("auto", "grid"): ("none", "off (auto for grid: grid search is an anchor: its trials run to the end)"),
    ("auto", "hyperband"): ("none", "off (auto for hyperband: hyperband stops trials itself, by its brackets)"),
    ("median", "random"): ("median", "median (chosen)"),
    ("asha", "bayesian"): ("asha", "asha (chosen)"),
    ("off", "bayesian"): ("none", "off (early_stopping=off): every trial runs all its epochs"),
}


@pytest.mark.parametrize("choice,algorithm", RESOLVED)
def test_which_rule_runs_and_why(choice, algorithm):
    assert resolve(choice, algorithm) == RESOLVED[choice, algorithm]


@pytest.mark.parametrize("choice", ["median", "asha"])
def test_a_pruner_on_top_of_hyperband_is_refused_naming_the_field(choice):
    with pytest.raises(BadInput, match=r"--early-stopping: .* hyperband"):
        resolve(choice, "hyperband")


# -- the decisions, tabled: (rule, direction, [(trial, step, value, expected prune) | ("end", trial, score)]) --

DECISIONS = {
    "asha: alone at a rung, a trial goes on": ("asha", "min", [("a", 1, 1.0, False)]),
    "asha: the second trial must be the best at rung 1": ("asha", "min", [("a", 1, 1.0, False), ("b", 1, 2.0, True)]),
    "asha: a better one goes on": ("asha", "min", [("a", 1, 1.0, False), ("b", 1, 0.5, False)]),
    "asha: between rungs nothing is judged": (
        "asha", "min", [("a", 1, 1.0, False), ("a", 2, 9.0, False), ("b", 1, 0.5, False), ("b", 2, 0.4, False)]),
    "asha: rung 2 at epoch 3 keeps the best third": (
        "asha", "min", [("a", 1, 1.0, False), ("b", 1, 0.9, False), ("c", 1, 0.8, False),
                        ("a", 3, 0.5, False), ("b", 3, 0.6, True)]),
    "asha, max: the larger value is the better": ("asha", "max", [("a", 1, 1.0, False), ("b", 1, 2.0, False),
                                                                 ("c", 1, 0.5, True)]),
    "median: nothing before 3 completed trials": (
        "median", "min", [("a", 1, 1.0, False), ("end", "a", 1.0), ("b", 1, 9.0, False)]),
    "median: worse than the completed trials' median stops": (
        "median", "min", [("a", 1, 1.0, False), ("end", "a", 1.0), ("b", 1, 2.0, False), ("end", "b", 2.0),
                          ("c", 1, 3.0, False), ("end", "c", 3.0), ("d", 1, 2.5, True), ("e", 1, 1.5, False)]),
    "none: never": ("none", "min", [("a", 1, 1.0, False), ("b", 1, 99.0, False)]),
    "a non-finite value is not judged here (the tuner fails the trial)": (
        "asha", "min", [("a", 1, 1.0, False), ("b", 1, float("nan"), False)]),
    "a repeated step keeps its first value": ("asha", "min", [("a", 1, 1.0, False), ("b", 1, 0.5, False),
                                                              ("b", 1, 5.0, False)]),
    "a pruned trial stays pruned": ("asha", "min", [("a", 1, 1.0, False), ("b", 1, 2.0, True), ("b", 2, 0.1, True)]),
}


@pytest.mark.parametrize("case", DECISIONS)
def test_pruning_decisions(case):
    rule, direction, events = DECISIONS[case]
    pruning = Pruning(rule, "val_mae", direction)
    for event in events:
        if event[0] == "end":
            pruning.end(event[1], event[2], completed=True)
            continue
        trial, step, value, expected = event
        decision = pruning.report(trial, step, value)
        assert decision.prune is expected, (event, decision)
        if decision.prune:
            assert decision.reason.startswith(("asha rung at epoch", "median rule after epoch")), decision.reason
            assert "val_mae" in decision.reason


def test_reasons_carry_the_figures():
    pruning = Pruning("asha", "val_mae", "min")
    pruning.report("a", 1, 400.0)
    decision = pruning.report("b", 1, 812.5)
    assert decision.reason == ("asha rung at epoch 1: val_mae 812.5 is not in the best 1/3 of the 2 trial(s) "
                               "that reached it (cut-off 400)")


# -- the chief's oracle: epochs kept on the trials, decisions in its state, rebuilt on restart --------


def _oracle(tmp_path, rule="asha"):
    from tune_contract.steps import SearchArgs

    from trainer.tuning.settings import from_args

    settings = from_args(SearchArgs(run_root=str(tmp_path), algorithm="random", objective_function="sleep", max_trials=6,
                                    epochs=4, seed=0, early_stopping=rule))
    return chief_oracle(settings, lease_seconds=30.0)


def test_a_restarted_chief_keeps_its_pruning_state(tmp_path):
    from trainer.tuning.distributed.oracles import NotHolder

    first = _oracle(tmp_path)
    a, b, c = (first.create_trial(t).trial_id for t in ("ta", "tb", "tc"))
    assert not first.report_epoch("ta", a, 1, 1.0).prune
    assert first.report_epoch("tb", b, 1, 2.0).prune  # worse than a at rung 1
    assert not first.report_epoch("tc", c, 1, 0.5).prune
    with pytest.raises(NotHolder):  # only the holder reports
        first.report_epoch("tc", a, 2, 0.1)

    second = _oracle(tmp_path)  # the chief restarted: rebuilt from the trials and its state
    assert second.pruning.pruned == first.pruning.pruned and b in second.pruning.pruned
    assert second.pruning.values(a) == {1: 1.0} and second.pruning.values(c) == {1: 0.5}
    assert second.pruning_decision(b).prune  # the tuner of b hears it on its next heartbeat
    d = second.create_trial("td").trial_id
    assert second.report_epoch("td", d, 1, 0.75).prune  # judged against the rebuilt rung: 0.5, 1.0
    assert not second.report_epoch("ta", a, 1, 1.0).prune  # a re-sent epoch of a resumed trial

    # b's tuner is lost: a pruned trial is finished, not handed over; scored at its best epoch
    second._last_seen["tb"] -= second.lease_seconds + 1
    second.expire_leases()
    assert b in second.end_order and second.trials[b].status == "COMPLETED" and second.trials[b].score == 2.0
    assert b not in second._retry_queue


# -- through the real chief and two tuners --------------------------------------------------------------


def test_a_pruned_trial_is_recorded_pruned_and_its_tuner_takes_the_next(tmp_path):
    """`sleep`: value (x - 0.5)^2 + 0.1 / epoch; ASHA prunes at epoch 1 any trial not the best
    so far (2 trials at the rung) or not in the best third, so of 6 random points some stop."""
    search = Search(tmp_path, tmp_path / "runs" / "r1", "--objective-function", "sleep", "--algorithm", "random",
                    "--early-stopping", "asha", "--max-trials", "6", "--epochs", "4", "--seed", "3")
    oracle, tuned = search.run(("--lease-seconds", "30"), 2, ("--sleep-seconds", "0.3", "--heartbeat-seconds", "0.5"))
    assert oracle["early_stopping"] == "asha (chosen)"
    assert oracle["completed"] == 6 and oracle["incomplete"] == []
    pruned = [t for t in oracle["trials"] if t.get("pruned")]
    assert pruned, oracle["trials"]
    for trial in pruned:  # recorded pruned, not failed: a scored trial with its best epoch
        assert trial["status"] == "COMPLETED" and trial["objective"] is not None
        assert trial["epochs"] < 4 and trial["pruned"].startswith("asha rung at epoch")
    full = [t for t in oracle["trials"] if not t.get("pruned")]
    assert all(t["epochs"] == 4 for t in full)
    # the tuner that ran a pruned trial went on with another one
    for result in tuned:
        ids = [t["trial_id"] for t in result["trials"]]
        for i, trial in enumerate(result["trials"][:-1]):
            if trial.get("pruned"):
                assert ids[i + 1] != trial["trial_id"]
    worker_view = {t["trial_id"]: t for r in tuned for t in r["trials"]}
    assert {t["trial_id"] for t in pruned} <= {i for i, t in worker_view.items() if t.get("pruned")}
