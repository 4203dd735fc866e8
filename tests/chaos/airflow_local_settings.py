"""Cluster policy of the chaos suite's private Airflow (copied into $AIRFLOW_HOME/config/).

"A tuner that never comes back" means its task's retries are exhausted. The DAG gives a tuner
8 retries with exponential backoff (~40 minutes of waiting before the last one), so runs whose
id starts with LOW_BUDGET_PREFIX get a budget of one retry instead: two kills exhaust it. The
DAG itself is unchanged; this is the same lever an administrator has (a cluster policy).
"""
LOW_BUDGET_PREFIX = "lowbudget-"
TUNER_TASK = "tuning.tune"


def task_instance_mutation_hook(task_instance, dag_run=None):
    run_id = getattr(dag_run, "run_id", None) or getattr(task_instance, "run_id", None) or ""
    if run_id.startswith(LOW_BUDGET_PREFIX) and task_instance.task_id == TUNER_TASK:
        task_instance.max_tries = 1
