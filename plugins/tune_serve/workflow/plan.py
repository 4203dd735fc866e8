"""From a run's parameters to the trainer flags of every pod task.

Kept out of the DAG file so it is plain, testable Python; the DAG only wires what this
module returns into the pod operators. Every command line is built by the step's dataclass
in `tune_contract.steps`, the same one the trainer parses it with.
"""
from __future__ import annotations

from typing import Any, TypedDict

from tune_contract import early_stopping, layout, models, search_space
from tune_contract import warm_start as warm_start_rule
from tune_contract.enums import AUTO, FUNCTION_OBJECTIVE
from tune_contract.results import Objective, RankedTrial, TrainResult
from tune_contract.steps import EvaluateArgs, OracleArgs, PrepareArgs, TrainArgs, TuneArgs
from tune_serve import config
from tune_serve.workflow import warm_start
from tune_serve.workflow.params import patience, resolve_objective, resolve_task


class Plan(TypedDict):
    """The run plan (`validate_params`' XCom). `prepare` is a finished command line; the other
    steps are their dataclass's fields, completed per chief, tuner, candidate or model."""

    run_id: str
    run_root: str
    model_name: str
    num_tuners: int
    top_n: int
    objective: Objective
    task: str
    objective_function: str | None
    early_stopping: str  # the rule the chief runs, and why (tune_contract.early_stopping)
    warm_start: str  # whether a previous run seeds the search (the chief's result has the final word)
    prepare: list[str]
    oracle: dict[str, Any]
    tune: dict[str, Any]
    train: dict[str, Any]
    evaluate: dict[str, Any]


def run_root(run_id: str) -> str:
    return layout.run_root(config.storage_root(), run_id)


def find_warm_start(conf: dict[str, Any], run_id: str) -> warm_start.WarmStart:
    """Whether a previous run seeds this search (reads the storage root: `validate_params` calls
    it and hands the answer to `build_plan`, which stays free of I/O)."""
    function = conf.get("objective_function")
    objective, direction = (FUNCTION_OBJECTIVE, "min") if function else resolve_objective(conf)
    return warm_start.decide(conf.get("warm_start", True), config.storage_root(), conf["model_name"], run_id,
                             _identity(conf, objective, direction, function))


NOT_LOOKED_UP: warm_start.WarmStart = {"run_root": None, "note": "no warm start: no previous run looked up"}


def build_plan(conf: dict[str, Any], run_id: str, warm: warm_start.WarmStart = NOT_LOOKED_UP) -> Plan:
    root = run_root(run_id)
    features = conf.get("features")
    function = conf.get("objective_function")
    task = resolve_task(conf)  # `auto` when only prepare can tell (it infers from the label column)
    conf_objective, conf_direction = resolve_objective(conf)
    objective = FUNCTION_OBJECTIVE if function else conf_objective
    direction = "min" if function else conf_direction
    model = models.name_or_default(conf.get("model"))
    search: dict[str, Any] = dict(
        run_root=root, algorithm=conf["algorithm"], search_space=conf.get("search_space") or None,
        objective=objective, direction=direction, max_trials=conf["max_trials"],
        executions_per_trial=conf["executions_per_trial"], epochs=conf["tuning_epochs"], seed=conf["seed"],
        objective_function=function, model=model, early_stopping=conf.get("early_stopping") or "auto",
    )
    _, early_stopping_why = early_stopping.resolve(search["early_stopping"], conf["algorithm"])
    # prepare_data loads and checks the model (and the space against it) before any tuner starts;
    # a benchmark function tunes no model
    checked = {} if function else dict(model=model, search_space=conf.get("search_space") or None,
                                       algorithm=conf["algorithm"])
    prepare = PrepareArgs(
        run_root=root, source=conf["source"], data_roots=",".join(config.data_roots()),
        label=conf.get("label") or None, features=",".join(features) if features else None,
        feature_spec=conf.get("feature_spec"),
        eval_fraction=conf["eval_fraction"], seed=conf["seed"], sample_rows=conf.get("sample_rows"),
        task=None if task == AUTO else task, objective=None if function else conf_objective, **checked,
    )
    oracle = OracleArgs(**search, lease_seconds=conf["tuner_lease_seconds"],
                        standby_tuners=conf["standby_tuners"],
                        deadline_seconds=conf["tuning_deadline_minutes"] * 60,
                        warm_start_from=warm["run_root"])
    # a healthy tuner renews its lease four times per lease, so one slow RPC never costs it
    tune = TuneArgs(**search, heartbeat_seconds=_heartbeat_seconds(conf["tuner_lease_seconds"]),
                    sleep_seconds=conf.get("trial_sleep_seconds", 1.0) if function == "sleep" else None)
    train = TrainArgs(run_root=root, model=model, epochs=conf["training_epochs"], patience=patience(conf),
                      objective=conf_objective, direction=conf_direction, seed=conf["seed"])
    # every gate given; evaluate applies those of the task the feature spec records
    evaluate = EvaluateArgs(run_root=root, mae_upper_bound=conf.get("mae_upper_bound"),
                            max_mae_increase=conf.get("max_mae_increase"),
                            auc_lower_bound=conf.get("auc_lower_bound"),
                            accuracy_lower_bound=conf.get("accuracy_lower_bound"),
                            max_auc_decrease=conf.get("max_auc_decrease"))
    return {
        "run_id": run_id,
        "run_root": root,
        "model_name": conf["model_name"],
        "num_tuners": conf["num_tuners"],
        "top_n": conf["top_n"],
        "objective": {"name": objective, "direction": direction},
        # what the plan knows of the task: given, a bundled dataset's, or "auto (inferred by prepare)"
        "task": task if task != AUTO else f"{AUTO} (inferred by prepare)",
        "objective_function": function,
        "early_stopping": early_stopping_why,
        "warm_start": warm["note"],
        "prepare": prepare.to_argv(),
        "oracle": oracle.to_dict(),
        "tune": tune.to_dict(),
        "train": train.to_dict(),
        "evaluate": evaluate.to_dict(),
    }


def _identity(conf: dict[str, Any], objective: str, direction: str, function: str | None) -> dict[str, Any]:
    """This run's search as the chief will record it (`search.json`), for the warm-start rule."""
    model = models.name_or_default(conf.get("model"))
    space = search_space.check(conf.get("search_space") or None, conf["algorithm"], function,
                               field="search_space", model=model)
    return warm_start_rule.search_identity(
        model=model, algorithm=conf["algorithm"], search_space=space.to_list() if space else None,
        objective=objective, direction=direction, objective_function=function, epochs=conf["tuning_epochs"],
        executions_per_trial=conf["executions_per_trial"])


def oracle_arguments(plan_oracle: dict[str, Any], *, port: int, bind: str,
                     xcom_file: str | None = None) -> list[str]:
    """The chief's command line: the plan's search, where to listen, and (where no XCom
    sidecar reads it) where to leave its result."""
    args = OracleArgs(**plan_oracle).replace(port=port, bind=bind)
    return (args.replace(xcom_file=xcom_file) if xcom_file else args).to_argv()


def tuner_arguments(plan: Plan, oracle_address: str) -> list[list[str]]:
    """One argument list per tuner; the id follows the map index, so a retried tuner
    keeps its id and the oracle hands its unfinished trial back."""
    tune = TuneArgs(**plan["tune"])
    return [tune.replace(tuner_id=f"tuner-{i}", oracle_address=oracle_address).to_argv()
            for i in range(plan["num_tuners"])]


def training_arguments(plan: Plan, leaderboard: list[RankedTrial]) -> list[list[str]]:
    train = TrainArgs(**plan["train"])
    return [train.replace(rank=entry["rank"], trial_id=str(entry["trial_id"]),
                          hyperparameters=entry["hyperparameters"]).to_argv()
            for entry in leaderboard]


def evaluation_arguments(plan: Plan, trained: list[TrainResult],
                         baseline_model: str | None) -> list[list[str]]:
    evaluate = EvaluateArgs(**plan["evaluate"])
    # a candidate whose training failed (diverged) exported nothing: its reason goes to the summary
    return [evaluate.replace(rank=model["rank"], model_path=model["model_path"],
                             baseline_model_path=baseline_model or None).to_argv()
            for model in trained if model and not model.get("failed")]


def _heartbeat_seconds(lease_seconds: float) -> float:
    return max(1.0, min(10.0, lease_seconds / 4))

