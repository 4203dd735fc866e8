"""
### tune_train_serve

Distributed Keras Tuner search on preemptible tuner pods → the top-N hyperparameter
sets trained in full → TFMA evaluation against thresholds and the model serving now →
the best blessed model deployed to TensorFlow Serving.

The backend (`local` processes, `kubernetes` or `gke` pods) comes from configuration
(`TUNE_SERVE_BACKEND` or the Variable `tune_serve_backend`), never from this file.
"""
from __future__ import annotations

import json
from datetime import timedelta

import pendulum
from airflow.sdk import TriggerRule, dag, task, task_group
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException

from tune_contract import layout
from tune_serve import config, storage
from tune_serve.workflow import failures, leaderboard, summaries, task_ids
from tune_serve.workflow import plan as planning
from tune_serve.workflow.backend import Backend, current
from tune_serve.workflow.params import MAX_TUNING_DEADLINE_MINUTES, ConfError, dag_params, validate_conf
from tune_serve.workflow.podspec import PodTask, Resources

backend: Backend = current()

# The chief and the tuners end the search themselves at the run's tuning_deadline_minutes; their
# pods' own deadline is only the backstop for a hung process, so it must outlast any search.
SEARCH_POD_DEADLINE = timedelta(minutes=MAX_TUNING_DEADLINE_MINUTES, hours=1)
PREPARE = PodTask(task_ids.PREPARE_DATA, "prepare", resources=Resources(cpu="2", memory="8Gi"),
                  deadline=timedelta(hours=1))
ORACLE = PodTask(task_ids.in_group(task_ids.START_ORACLE), "oracle",
                 resources=Resources(cpu="1", memory="2Gi"), deadline=SEARCH_POD_DEADLINE)
TUNE = PodTask(task_ids.in_group(task_ids.TUNE), "tune", resources=Resources(cpu="4", memory="16Gi",
                                                    gpus=int(config.setting("tuner_gpus", "1"))),
               preemptible=True, retries=8, pool=config.setting("tuner_pool", "tuners"),
               deadline=SEARCH_POD_DEADLINE)
TRAIN = PodTask(task_ids.in_group(task_ids.TRAIN), "train", resources=Resources(cpu="8", memory="32Gi",
                                                      gpus=int(config.setting("train_gpus", "2"))),
                preemptible=config.setting("train_on_spot", "false") == "true", retries=4)
EVALUATE = PodTask(task_ids.in_group(task_ids.EVALUATE), "evaluate",
                   resources=Resources(cpu="4", memory="16Gi"), deadline=timedelta(hours=2))


@dag(
    dag_id=config.DAG_ID,
    schedule=config.setting("schedule"),  # e.g. TUNE_SERVE_SCHEDULE=@weekly to retune every week
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params=dag_params(),
    # a task that fails for good records its one-line reason with the run (tune_serve.workflow.failures)
    default_args={"owner": "ml-platform", "retries": 2, "retry_delay": timedelta(seconds=10),
                  "on_failure_callback": failures.record},
    tags=["ml", "keras-tuner", "tf-serving", f"backend:{config.backend()}"],
    doc_md=__doc__,
)
def tune_train_serve():
    @task(multiple_outputs=True, retries=1)
    def validate_params(params=None, run_id=None) -> dict:
        try:
            validate_conf(params)
        except ConfError as exc:
            raise AirflowFailException(str(exc)) from None  # bad input: never retried
        plan = planning.build_plan(dict(params), run_id, planning.find_warm_start(dict(params), run_id))
        # the decisions taken for the run, where its first log shows them
        print(f"task: {plan['task']}; objective: {plan['objective']['name']} "
              f"({plan['objective']['direction']})")
        print(f"early stopping: {plan['early_stopping']}")
        print(plan["warm_start"])
        return plan

    plan = validate_params()
    prepare = backend.pod_operator(PREPARE, arguments=plan["prepare"])

    @task_group(group_id=task_ids.TUNING)
    def tuning():
        chief = backend.start_oracle(ORACLE, oracle_args=plan["oracle"])
        prepare >> chief

        @task
        def tuner_arguments(plan: dict, chief: dict) -> list[list[str]]:
            return planning.tuner_arguments(plan, chief["address"])

        tuners = backend.mapped_pod_operator(TUNE).expand(arguments=tuner_arguments(plan, chief.output))
        done = backend.wait_oracle(ORACLE, chief.output)
        stop = backend.stop_oracle(chief.output)
        chief >> [tuners, done] >> stop
        stop.as_teardown(setups=chief)
        return tuners, done

    tuners, search = tuning()

    # lost tuners leave no XCom; the chief's records cover them
    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def aggregate_top_n(plan: dict, tuner_results, search_result) -> list[dict]:
        if not search_result:
            raise AirflowFailException("the search did not finish (see tuning.wait_oracle); nothing to train")
        trials = leaderboard.merge_trials(list(tuner_results or []), search_result)
        top = leaderboard.top_n(trials, plan["top_n"], plan["objective"]["direction"])
        print(f"{len(trials)} trials completed of {search_result.get('max_trials')}; "
              f"lost tuners: {search_result.get('lost_tuners') or 'none'}")
        for note in summaries.search_notes(search_result):
            print(note)
        for entry in top:
            print(f"rank {entry['rank']}: {plan['objective']['name']}={entry['objective']:.4f} "
                  f"trial {entry['trial_id']}{' (pruned)' if entry.get('pruned') else ''} "
                  f"{entry['hyperparameters']}")
        if plan["objective_function"]:
            raise AirflowSkipException(f"benchmark objective {plan['objective_function']}: nothing to train")
        return top

    top = aggregate_top_n(plan, tuners.output, search.output)

    @task_group(group_id=task_ids.TRAINING)
    def training():
        @task
        def training_arguments(plan: dict, top: list[dict]) -> list[list[str]]:
            return planning.training_arguments(plan, top)

        return backend.mapped_pod_operator(TRAIN).expand(arguments=training_arguments(plan, top))

    trained = training()

    @task_group(group_id=task_ids.EVALUATION)
    def evaluation():
        @task
        def evaluation_arguments(plan: dict, trained) -> list[list[str]]:
            baseline = backend.current_model(plan["model_name"])
            print(f"baseline (serving now): {baseline or 'none'}")
            return planning.evaluation_arguments(plan, list(trained), baseline)

        return backend.mapped_pod_operator(EVALUATE).expand(
            arguments=evaluation_arguments(plan, trained.output))

    evaluated = evaluation()

    @task_group(group_id=task_ids.SERVING)
    def serving_group():
        @task
        def select_model(evaluations) -> dict:
            for evaluation in evaluations:
                if evaluation:
                    print(leaderboard.verdict_line(evaluation))
            try:
                return leaderboard.select_blessed(list(evaluations))
            except leaderboard.NoCandidate as exc:
                raise AirflowSkipException(str(exc)) from None

        @task(retries=1)
        def deploy_serving(plan: dict, candidate: dict, prepared: dict) -> dict:
            # the verdict holds against the version serving when it was evaluated: under the deploy
            # lock the backend publishes, finds the candidate already published, or refuses
            deployed = backend.deploy(candidate["model_path"], plan["model_name"],
                                      prepared["sample_instance"],
                                      candidate={"run_id": plan["run_id"], "rank": candidate["rank"],
                                                 "judged_against": candidate.get("baseline_model_path")})
            print(f"{deployed['action']}: {deployed['reason']}")
            # which candidate now serves, so the run's record traces the version to its model
            return {**deployed, "candidate_rank": candidate["rank"], "source_model": candidate["model_path"],
                    "eval_mae": candidate["overall"].get("mae"),
                    "eval_metric": dict(zip(("name", "value"), leaderboard.headline(candidate), strict=True))}

        return deploy_serving(plan, select_model(evaluated.output), prepare.output)

    deployed = serving_group()

    # Runs once all its upstream tasks are done, whatever their states: ALL_DONE_MIN_ONE_SUCCESS skips
    # as soon as one upstream was skipped, and a run that blessed no candidate (select/deploy skipped)
    # or tuned a benchmark objective needs its summary most. It is a teardown (below): a teardown's
    # ALL_DONE_SETUP_SUCCESS with no setup upstream is all done.
    @task(retries=1)
    def summarize(plan: dict, top, search_result, trained, evaluations, deployed, prepared, params=None,
                  ti=None, dag=None) -> dict:
        """One record of what this run decided, next to its artifacts; fails the run if a
        step that matters failed (a tuner lost for good does not: the search covered it).
        A run whose parameters were refused has no plan: its record says why, where the plan
        would have put it."""
        root = plan["run_root"] if plan else planning.run_root(ti.run_id)
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id])[ti.run_id]
        upstream = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
        skipped = summaries.stopped(states, upstream, summaries.may_skip(plan, evaluations))
        summary = summaries.build(plan or summaries.unplanned(ti.run_id, params), top, evaluations, deployed,
                                  states, trained=trained, search=search_result, failures=failures.read(root),
                                  prepared=prepared, skipped_from_outside=skipped)
        path = storage.path(root)
        path.mkdir(parents=True, exist_ok=True)
        (path / layout.SUMMARY_FILE).write_text(json.dumps(summary, indent=2, default=str))
        print(summary["outcome"])  # the run's last word: what serving changed, or why nothing did
        if summary["failed_steps"] or summary["stopped"]:
            raise AirflowFailException("failed steps: "
                                       f"{', '.join(summary['failed_steps'] + summary['stopped'])}: "
                                       f"{summary['outcome']}")
        return summary

    # The run's state is decided by its leaves, and a teardown is no leaf: a run marked failed while
    # its tuners ran (running tasks failed, waiting ones skipped, teardowns left to run) ended as
    # success once stop_oracle succeeded, summarize being skipped. As a teardown summarize is not
    # skipped; on_failure_fail_dagrun makes it the leaf whose failure fails the run, and it fails
    # on any step that failed or was skipped from outside.
    summarize(plan, top, search.output, trained.output, evaluated.output, deployed,
              prepare.output).as_teardown(on_failure_fail_dagrun=True)


tune_train_serve()
