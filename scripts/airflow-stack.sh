#!/usr/bin/env bash
# airflow-stack.sh start|stop|status — the local Airflow components, each on 127.0.0.1.
set -euo pipefail
source "$(dirname "$0")/airflow-env.sh"
PIDS="$AIRFLOW_HOME/pids"
COMPONENTS="api-server scheduler dag-processor triggerer"

# Running = the pid exists, is not a zombie (killed but not yet reaped) and is still airflow.
alive() {
  local pid
  [ -f "$PIDS/$1" ] || return 1
  pid=$(cat "$PIDS/$1")
  [ -r "/proc/$pid/stat" ] || return 1
  [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ] || return 1
  tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -q airflow
}

start() {
  mkdir -p "$PIDS" "$AIRFLOW_HOME/logs"
  if [ ! -f "$AIRFLOW_HOME/.initialised" ]; then
    airflow db migrate > "$AIRFLOW_HOME/logs/db-migrate.log" 2>&1
    airflow pools set tuners "${TUNE_SERVE_TUNER_SLOTS:-8}" "Keras Tuner workers running at once" > /dev/null
    touch "$AIRFLOW_HOME/.initialised"
  fi
  for c in $COMPONENTS; do
    if alive "$c"; then continue; fi
    case $c in
      scheduler|triggerer) args="--skip-serve-logs" ;;
      *) args="" ;;
    esac
    # setsid: stop kills the component with its own children (workers, parsers).
    setsid airflow $c $args > "$AIRFLOW_HOME/logs/$c.log" 2>&1 < /dev/null &
    echo $! > "$PIDS/$c"
  done
  for _ in $(seq 1 120); do
    if python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health', timeout=2)" 2>/dev/null; then
      echo "Airflow is up: http://127.0.0.1:$AIRFLOW_PORT (logs in $AIRFLOW_HOME/logs)"; return 0
    fi
    sleep 1
  done
  echo "Airflow API server did not come up; see $AIRFLOW_HOME/logs/api-server.log" >&2; return 1
}

stop() {
  for c in $COMPONENTS; do
    [ -f "$PIDS/$c" ] || continue
    pid=$(cat "$PIDS/$c")
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -KILL -- "-$pid" 2>/dev/null || true
    rm -f "$PIDS/$c"
  done
}

status() {
  for c in $COMPONENTS; do
    if alive "$c"; then echo "$c: running"; else echo "$c: stopped"; fi
  done
}

"${1:-status}"
