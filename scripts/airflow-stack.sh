#!/usr/bin/env bash
# airflow-stack.sh start|stop|status — the local Airflow components, each on 127.0.0.1, and (local
# backend) the model server of the serving root on TUNE_SERVE_SERVING_PORT.
set -euo pipefail
source "$(dirname "$0")/airflow-env.sh"
PIDS="$AIRFLOW_HOME/pids"
COMPONENTS="api-server scheduler dag-processor triggerer"
SERVING_PORT="${TUNE_SERVE_SERVING_PORT:-8501}"
local_backend() { [ "${TUNE_SERVE_BACKEND:-local}" = local ]; }
model_server() { PYTHONPATH="$REPO/plugins${PYTHONPATH:+:$PYTHONPATH}" python -m tune_serve.local.server "$@"; }

# Who listens on a port: "pid command" of each listener, or nothing. Our own api-server counts
# when the listener is its process or one of its children (uvicorn workers).
listener_of() {
  python - "$1" "${2:-}" <<'PY'
import sys, psutil
port, ours = int(sys.argv[1]), sys.argv[2]
family = {ours} if ours else set()
if ours:
    try:
        family |= {str(c.pid) for c in psutil.Process(int(ours)).children(recursive=True)}
    except psutil.Error:
        pass
found = []
for proc in psutil.process_iter(["pid", "name"]):
    try:
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in proc.net_connections("tcp")):
            found.append((str(proc.pid), " ".join(proc.cmdline())[:120] or proc.info["name"]))
    except psutil.Error:
        pass
import socket
if not found:  # a listener this user cannot inspect still holds the port
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            found.append(("?", "a process of another user"))
print("ours" if found and all(pid in family for pid, _ in found) else "; ".join(f"pid {p}: {c}" for p, c in found))
PY
}

port_taken() {  # $1 port, $2 variable name, $3 what: fail naming the port and how to choose another
  echo "error: port $1 on 127.0.0.1 is taken by another process ($4), so $3 cannot listen there." >&2
  echo "       Choose another port: $2=$(( $1 + 1 )) make demo   (or stop that process)" >&2
  exit 1
}

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
  # Before anything starts: a port held by a stranger (another Airflow on 8080, another model
  # server on 8501) would answer our health checks and take our runs.
  if ! alive api-server; then
    holder=$(listener_of "$AIRFLOW_PORT")
    [ -z "$holder" ] || port_taken "$AIRFLOW_PORT" AIRFLOW_PORT "this Airflow's API server" "$holder"
  fi
  if local_backend; then
    model_server check > /dev/null 2>&1 ||
      port_taken "$SERVING_PORT" TUNE_SERVE_SERVING_PORT "the model server" "$(listener_of "$SERVING_PORT")"
    model_server start > "$AIRFLOW_HOME/logs/model-server-start.log" 2>&1 &
    serving_start=$!
  fi
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
  up=""
  for _ in $(seq 1 120); do
    if python -c "import urllib.request as u; u.urlopen('http://127.0.0.1:$AIRFLOW_PORT/api/v2/monitor/health', timeout=2)" 2>/dev/null; then
      holder=$(listener_of "$AIRFLOW_PORT" "$(cat "$PIDS/api-server")")
      if [ "$holder" != ours ]; then  # answered, but not by the api-server we started
        stop
        port_taken "$AIRFLOW_PORT" AIRFLOW_PORT "this Airflow's API server" "$holder"
      fi
      up=yes; break
    fi
    alive api-server || break
    sleep 1
  done
  if [ -z "$up" ]; then
    echo "Airflow API server did not come up; see $AIRFLOW_HOME/logs/api-server.log" >&2; return 1
  fi
  echo "Airflow is up: http://127.0.0.1:$AIRFLOW_PORT (logs in $AIRFLOW_HOME/logs)"
  if [ -n "${serving_start:-}" ]; then
    if ! wait "$serving_start"; then
      cat "$AIRFLOW_HOME/logs/model-server-start.log" >&2; stop; return 1
    fi
    cat "$AIRFLOW_HOME/logs/model-server-start.log"
  fi
}

stop() {
  if local_backend; then model_server stop || true; fi
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
