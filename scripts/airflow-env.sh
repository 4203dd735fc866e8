# Source this file: the local Airflow installation of this repository.
# SQLite + LocalExecutor, every component on 127.0.0.1, no log servers (they bind 0.0.0.0).
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export AIRFLOW_HOME="${AIRFLOW_HOME:-$REPO/.airflow}"
export AIRFLOW_PORT="${AIRFLOW_PORT:-8080}"
export AIRFLOW__CORE__DAGS_FOLDER="$REPO/dags"
export AIRFLOW__CORE__PLUGINS_FOLDER="$REPO/plugins"
export AIRFLOW__CORE__LOAD_EXAMPLES=False
export AIRFLOW__CORE__EXECUTOR=LocalExecutor
# 2-core machines: the default parallelism of 32 starts 32 worker processes (~5.5 GiB).
export AIRFLOW__CORE__PARALLELISM="${AIRFLOW__CORE__PARALLELISM:-8}"
export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=False
export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$AIRFLOW_HOME/airflow.db"
export AIRFLOW__API__HOST=127.0.0.1
export AIRFLOW__API__PORT="$AIRFLOW_PORT"
export AIRFLOW__API__BASE_URL="http://127.0.0.1:$AIRFLOW_PORT"
export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$AIRFLOW_PORT/execution/"
# A local, loopback-only installation: everyone is admin, no login page.
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS=True
export AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=10
# A task whose worker died with the scheduler is reset (and its pod re-attached) within ~30 s, not 5 min.
export AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL="${AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL:-30}"
export AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK=False
export PATH="$REPO/.venv/airflow/bin:$PATH"
export TUNE_SERVE_BACKEND="${TUNE_SERVE_BACKEND:-local}"
