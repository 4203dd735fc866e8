"""Local backend: every pod task is a process in the trainer environment.

Mirrors what the Kubernetes backend does with pods: the process is detached from the
Airflow worker, its output streams into the task log, its XCom file becomes the task's
XCom, a signal-killed process is a preemption (retried) and a non-zero exit a failure
(not retried). A worker that dies mid-task leaves the process running; the retry
re-attaches to it instead of starting a duplicate (Airflow's ResumableJobMixin, the
same idea as KubernetesPodOperator's reattach_on_restart).

A run's chief and tuners share its search secret (every call to the chief must carry it): a
random token in `{run folder}/oracle.secret`, readable only by this user, made by
start_oracle and removed by stop_oracle; processes get its path, never the token itself.
"""
from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from airflow.sdk import BaseOperator, ResumableJobMixin, TriggerRule

from tune_contract import enums, models
from tune_contract.results import OracleHandle
from tune_serve import config
from tune_serve.errors import PodFailed, PodPreempted
from tune_serve.local.ports import free_port
from tune_serve.local.process import FAILED, KILLED, RUNNING, SUCCEEDED, LocalProcess, inherited_env
from tune_serve.local.serving import current_model, deploy, version_labels
from tune_serve.local.trigger import LocalProcessTrigger
from tune_serve.workflow import plan as planning
from tune_serve.workflow import task_ids
from tune_serve.workflow.backend import Arguments, Handle, OracleFields
from tune_serve.workflow.links import POD_TASK_LINKS
from tune_serve.workflow.podspec import TRAINER_COMMAND, PodTask

if TYPE_CHECKING:
    from airflow.sdk.definitions.mappedoperator import OperatorPartial

SEARCH_SECRET_FILE = "oracle.secret"
SECRET_FILE_ENV = enums.ORACLE_SECRET_FILE_ENV  # what the trainer's oracle and tune steps read
RUN_ID_FILE = "run_id"  # in the chief's folder: the run it serves, checked before re-attaching
SUPERSEDED = "superseded"  # a stored job that ran another command: neither resumed nor reused


def _safe(part: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", part)


def run_folder(run_id: str) -> str:
    """The name of one DAG run's state folder: a hash of the run id (cleaning alone would
    give `a:b` and `a_b` one folder, and one run could re-attach to the other's chief),
    after a readable prefix."""
    return f"{_safe(run_id)[:64]}.{hashlib.sha256(run_id.encode()).hexdigest()[:16]}"


def run_dir(dag_id: str, run_id: str) -> Path:
    return Path(config.local_state_dir()) / _safe(dag_id) / run_folder(run_id)


def search_secret_file(dag_id: str, run_id: str) -> Path:
    """The run's search secret: the chief serves only calls carrying it (see
    trainer.tuning.distributed.oracle_auth)."""
    return run_dir(dag_id, run_id) / SEARCH_SECRET_FILE


def _ensure_search_secret(path: Path) -> Path:
    """A random token in a file only this user can read, made once per run (kept on re-attach)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path
    with os.fdopen(fd, "w") as f:
        f.write(secrets.token_urlsafe(32))
    return path


def _task_dir(context, kind: str) -> Path:
    ti = context["ti"]
    name = ti.task_id + (f".{ti.map_index}" if ti.map_index is not None and ti.map_index >= 0 else "")
    return run_dir(ti.dag_id, ti.run_id) / name / kind


def _process_env(env_vars: dict[str, str] | None) -> dict[str, str]:
    # the image's PYTHONPATH: the trainer and the models folder (the run's `model` is imported from it)
    trainer_path = os.pathsep.join(str(config.REPO_ROOT / "include" / d) for d in ("trainer", models.FOLDER))
    env = inherited_env(PYTHONPATH=trainer_path, PYTHONUNBUFFERED="1",
                        TF_CPP_MIN_LOG_LEVEL="2")
    env.update({k: str(v) for k, v in (env_vars or {}).items()})
    return env


def _argv(cmds: list[str], arguments: list[Any]) -> list[str]:
    cmds = list(cmds)
    if cmds[:1] == ["python"]:
        cmds[0] = config.trainer_python()  # the image's python is the trainer venv's here
    return [*cmds, *(str(a) for a in arguments or [])]


class LocalPodOperator(ResumableJobMixin, BaseOperator):
    """Run a trainer step as a local process, like KubernetesPodOperator runs it as a pod."""

    template_fields = ("arguments", "env_vars")
    external_id_key = "local_process_dir"
    operator_extra_links = POD_TASK_LINKS
    ui_color = "#d5e8f7"

    def __init__(self, *, cmds: list[str], arguments: Arguments | None = None,
                 env_vars: dict[str, str] | None = None, deadline: timedelta = timedelta(hours=6),
                 poll_seconds: float = 0.5, search_secret: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.search_secret = search_secret  # a tuner: gets the path of the run's search secret
        self.cmds = cmds
        self.arguments = cast("list[Any]", arguments or [])  # a template field: rendered before execute
        self.env_vars = env_vars or {}
        self.deadline = deadline
        self.poll_seconds = poll_seconds
        self._process: LocalProcess | None = None

    def execute(self, context):
        return self.execute_resumable(context)

    def submit_job(self, context) -> str:
        directory = _task_dir(context, f"try-{context['ti'].try_number}")
        argv = _argv(self.cmds, self.arguments)
        env = dict(self.env_vars)
        if self.search_secret:
            ti = context["ti"]
            env[SECRET_FILE_ENV] = str(search_secret_file(ti.dag_id, ti.run_id))
        self._process = LocalProcess.launch(directory, argv, _process_env(env))
        self.log.info("Started %s (pid %s) in %s", " ".join(argv), self._process.record()["pid"], directory)
        return str(directory)

    def get_job_status(self, external_id, context) -> str:
        try:
            process = LocalProcess(Path(external_id))
            if process.launch_spec()["argv"] != _argv(self.cmds, self.arguments):
                # A stored job is this task's only if it ran this very command: a cleared evaluate
                # whose baseline changed must judge again, not hand back the old verdict.
                self.log.info("The stored job %s ran another command: starting this one", external_id)
                if process.state() == RUNNING:
                    process.kill()
                return SUPERSEDED
            return process.state()
        except (OSError, ValueError, KeyError):
            return KILLED  # its directory is gone or unreadable: nothing to re-attach to

    def is_job_active(self, status: str) -> bool:
        return status == RUNNING

    def is_job_succeeded(self, status: str) -> bool:
        return status == SUCCEEDED

    def poll_until_complete(self, external_id, context):
        """Stream the output until the process ends; return its result (the mixin returns
        this value directly when it re-attached to a running process)."""
        process = self._process if self._process and str(self._process.directory) == external_id \
            else LocalProcess(Path(external_id))
        self._process = process
        started = process.record()["started_at"]
        offset = 0
        while True:
            state = process.state()
            lines, offset = process.read_log(offset)
            for line in lines:
                self.log.info("%s", line)
            if state != RUNNING:
                break
            if time.time() - started > self.deadline.total_seconds():
                process.kill()
                raise PodFailed(f"deadline of {self.deadline} exceeded (activeDeadlineSeconds); "
                                "process killed")
            time.sleep(self.poll_seconds)
        if state == KILLED:
            raise PodPreempted(f"process killed (exit status {process.exit_code()}): treated as a preemption")
        if state == FAILED:
            raise PodFailed(f"exit status {process.exit_code()}: {process.reason()}")
        return self.get_job_result(external_id, context)

    def get_job_result(self, external_id, context):
        result = LocalProcess(Path(external_id)).result()
        if result is None:
            raise PodFailed(f"the step succeeded but wrote no result to {Path(external_id) / 'return.json'}")
        return result

    def on_kill(self) -> None:
        if self._process is not None:
            self._process.kill()


class LocalOracleHandle(OracleHandle):
    """`start_oracle`'s XCom locally: the chief's address and its process directory."""

    directory: str


class LocalStartOracleOperator(BaseOperator):
    """Start the Keras Tuner chief as a detached process and return its address at once.

    `oracle_args`: the plan's `OracleArgs` fields; this operator adds where it listens."""

    template_fields = ("oracle_args", "env_vars")

    def __init__(self, *, cmds: list[str], oracle_args: OracleFields,
                 env_vars: dict[str, str] | None = None, **kwargs):
        super().__init__(**kwargs)
        self.cmds, self.env_vars = cmds, env_vars or {}
        self.oracle_args = cast("dict[str, Any]", oracle_args)  # a template field: rendered before execute

    def execute(self, context) -> LocalOracleHandle:
        directory = _task_dir(context, "chief")
        run_id = context["ti"].run_id
        if (directory / "process.json").exists() and LocalProcess(directory).state() in (RUNNING, SUCCEEDED):
            recorded = (directory / RUN_ID_FILE).read_text() if (directory / RUN_ID_FILE).exists() else None
            if recorded != run_id:
                raise PodFailed(f"the chief in {directory} belongs to run {recorded!r}, not {run_id!r}; "
                                "not re-attaching to it")
            address = (directory / "address").read_text()
            self.log.info("Chief already running at %s; re-attaching", address)
            return {"address": address, "directory": str(directory)}
        port = free_port()
        argv = _argv(self.cmds, planning.oracle_arguments(self.oracle_args, port=port, bind="127.0.0.1"))
        secret = _ensure_search_secret(search_secret_file(context["ti"].dag_id, run_id))
        env = _process_env({**self.env_vars, "KERASTUNER_TUNER_ID": "chief", SECRET_FILE_ENV: str(secret),
                            "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": str(port)})
        directory.mkdir(parents=True, exist_ok=True)
        (directory / RUN_ID_FILE).write_text(run_id)
        process = LocalProcess.launch(directory, argv, env)
        address = f"127.0.0.1:{port}"
        (directory / "address").write_text(address)
        self.log.info("Started the chief (pid %s) at %s; output in %s", process.record()["pid"], address,
                      process.log_file)
        return {"address": address, "directory": str(directory)}


class LocalWaitOracleOperator(BaseOperator):
    """Wait for the chief in the triggerer (no worker slot held); restart it if it was killed,
    like a Job restarting its pod. The wait ends at the chief's pod deadline (which outlasts any
    search) counted from its first launch, however many restarts or task retries came between."""

    template_fields = ("handle",)

    def __init__(self, *, handle: Handle, deadline: timedelta, max_restarts: int = 6,
                 poll_seconds: float = 2.0, **kwargs):
        super().__init__(**kwargs)
        self.handle = cast("LocalOracleHandle", handle)  # a template field: rendered before execute
        self.deadline = deadline
        self.max_restarts, self.poll_seconds = max_restarts, poll_seconds

    def _process(self) -> LocalProcess:
        return LocalProcess(Path(self.handle["directory"]))

    def execute(self, context):
        return self._settle(self._process(), log_offset=0)

    def execute_complete(self, context, event: dict):
        return self._settle(self._process(), log_offset=event["log_offset"])

    def _settle(self, process: LocalProcess, log_offset: int):
        """Act on the chief's state as stored on disk: done, failed, restarted or still waiting."""
        state = process.state()
        if state == SUCCEEDED:
            return process.result()
        if state == FAILED:
            raise PodFailed(f"the chief failed with exit status {process.exit_code()}: {process.reason()}")
        if state == KILLED:
            restarts = process.record().get("restarts", 0)
            if restarts >= self.max_restarts:
                raise PodFailed(f"the chief was killed {restarts + 1} times; giving up (backoffLimit)")
            self.log.warning("The chief was killed (exit status %s); restarting it (restart %d), it resumes "
                             "from its state on disk", process.exit_code(), restarts + 1)
            process.relaunch()
        remaining = self.deadline.total_seconds() - (time.time() - process.launched_at())
        if remaining <= 0:
            raise PodFailed(f"the chief was still running {self.deadline} after its launch; see its output "
                            f"in {process.log_file}")
        self.defer(trigger=LocalProcessTrigger(str(process.directory), self.poll_seconds, log_offset),
                   method_name="execute_complete", timeout=timedelta(seconds=remaining))


class LocalStopOracleOperator(BaseOperator):
    """Teardown: make sure no chief outlives its run, whatever the run's outcome."""

    template_fields = ("handle",)

    def __init__(self, *, handle: Handle, **kwargs):
        super().__init__(**kwargs)
        self.handle = cast("LocalOracleHandle | None", handle)  # a template field: rendered before execute

    def execute(self, context) -> None:
        if self.handle:
            process = LocalProcess(Path(self.handle["directory"]))
            if process.running():
                self.log.info("Stopping the chief (pid %s)", process.record()["pid"])
                process.kill()
        ti = context["ti"]
        search_secret_file(ti.dag_id, ti.run_id).unlink(missing_ok=True)  # goes with the chief


def _common(spec: PodTask) -> dict:
    return dict(
        task_id=spec.task_id, retries=spec.retries, retry_delay=spec.retry_delay,
        retry_exponential_backoff=True, max_retry_delay=spec.max_retry_delay,
        **({"pool": spec.pool} if spec.pool else {}),
    )


def _pod_kwargs(spec: PodTask) -> dict:
    return dict(cmds=spec.command, env_vars=dict(spec.env), deadline=spec.deadline,
                search_secret=spec.step == "tune", **_common(spec))


def pod_operator(spec: PodTask, *, arguments: Arguments | None = None) -> LocalPodOperator:
    return LocalPodOperator(arguments=list(spec.arguments) if arguments is None else arguments,
                            **_pod_kwargs(spec))


def mapped_pod_operator(spec: PodTask) -> OperatorPartial:
    return LocalPodOperator.partial(**_pod_kwargs(spec))


def start_oracle(spec: PodTask, oracle_args: OracleFields) -> LocalStartOracleOperator:
    return LocalStartOracleOperator(cmds=spec.command, oracle_args=oracle_args, env_vars=dict(spec.env),
                                    **_common(spec))


def wait_oracle(spec: PodTask, handle: Handle) -> LocalWaitOracleOperator:
    return LocalWaitOracleOperator(**{"handle": handle, "deadline": spec.deadline, **_common(spec),
                                      "task_id": task_ids.in_group(task_ids.WAIT_ORACLE)})


def stop_oracle(handle: Handle) -> LocalStopOracleOperator:
    return LocalStopOracleOperator(task_id=task_ids.in_group(task_ids.STOP_ORACLE), handle=handle,
                                   trigger_rule=TriggerRule.ALL_DONE)


__all__ = ["pod_operator", "mapped_pod_operator", "start_oracle", "wait_oracle", "stop_oracle", "deploy",
           "current_model", "version_labels", "LocalPodOperator", "TRAINER_COMMAND"]
