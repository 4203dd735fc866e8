"""PodTask → the KubernetesPodOperator arguments that describe its pod.

Pure functions of the task description and the cluster settings, so every rule (GPUs,
spot scheduling, security context, labels, deadline) is tested without a cluster.
"""
from __future__ import annotations

import hashlib
import re
from typing import Any

from kubernetes.client import models as k8s

from tune_serve.kubernetes import images
from tune_serve.kubernetes.settings import GKE_ACCELERATOR_LABEL, ClusterSettings
from tune_serve.workflow.podspec import PodTask

BASE_CONTAINER = "base"
STORAGE_VOLUME = "shared-storage"
APP_LABELS = {
    "app.kubernetes.io/name": "tune-serve",
    "app.kubernetes.io/part-of": "tune-train-serve",
    "app.kubernetes.io/managed-by": "airflow",
}
COMPONENT_LABEL = "app.kubernetes.io/component"
RUN_LABEL = "tune-serve/run"
# The cluster autoscaler would otherwise evict long pods to pack nodes; on spot pools
# an eviction is cheap (the tuner resumes its trial), elsewhere it would waste hours.
SAFE_TO_EVICT = "cluster-autoscaler.kubernetes.io/safe-to-evict"


def pod_security_context(s: ClusterSettings) -> k8s.V1PodSecurityContext:
    return k8s.V1PodSecurityContext(
        run_as_non_root=True, run_as_user=s.run_as_user, run_as_group=s.run_as_user, fs_group=s.run_as_user,
        seccomp_profile=k8s.V1SeccompProfile(type="RuntimeDefault"),
    )


def container_security_context() -> k8s.V1SecurityContext:
    return k8s.V1SecurityContext(
        run_as_non_root=True, allow_privilege_escalation=False, privileged=False,
        capabilities=k8s.V1Capabilities(drop=["ALL"]),
    )


def resources(spec: PodTask, s: ClusterSettings) -> k8s.V1ResourceRequirements:
    disk = spec.resources.ephemeral_storage
    requests = {"cpu": spec.resources.cpu, "memory": spec.resources.memory, "ephemeral-storage": disk}
    # no CPU limit: throttling only slows training down
    limits = {"memory": spec.resources.memory, "ephemeral-storage": disk}
    if spec.resources.gpus > 0:
        requests[s.gpu_resource] = limits[s.gpu_resource] = str(spec.resources.gpus)
    return k8s.V1ResourceRequirements(requests=requests, limits=limits)


def node_selector(spec: PodTask, s: ClusterSettings) -> dict[str, str]:
    selector: dict[str, str] = {}
    if spec.preemptible:
        selector.update(s.spot_node_selector)
    if spec.resources.gpus > 0 and s.gpu_accelerator:
        selector[GKE_ACCELERATOR_LABEL] = s.gpu_accelerator
    return selector


def tolerations(spec: PodTask, s: ClusterSettings) -> list[k8s.V1Toleration]:
    wanted = [*(s.spot_tolerations if spec.preemptible else []),
              *(s.gpu_tolerations if spec.resources.gpus else [])]
    return [k8s.V1Toleration(**{_snake(k): v for k, v in t.items()}) for t in wanted]


def affinity(spec: PodTask, s: ClusterSettings) -> k8s.V1Affinity | None:
    """Keep pods that must not be preempted off spot nodes, even when the spot pool is untainted."""
    if spec.preemptible or not s.keep_off_spot or not s.spot_node_selector:
        return None
    expressions = [k8s.V1NodeSelectorRequirement(key=key, operator="NotIn", values=[value])
                   for key, value in sorted(s.spot_node_selector.items())]
    return k8s.V1Affinity(node_affinity=k8s.V1NodeAffinity(
        required_during_scheduling_ignored_during_execution=k8s.V1NodeSelector(
            node_selector_terms=[k8s.V1NodeSelectorTerm(match_expressions=expressions)])))


def storage(s: ClusterSettings) -> tuple[list[k8s.V1Volume], list[k8s.V1VolumeMount]]:
    """The ReadWriteMany claim holding `storage_root`, when the cluster has no GCS."""
    if not s.storage_claim:
        return [], []
    return ([k8s.V1Volume(name=STORAGE_VOLUME,
                          persistent_volume_claim=k8s.V1PersistentVolumeClaimVolumeSource(
                              claim_name=s.storage_claim))],
            [k8s.V1VolumeMount(name=STORAGE_VOLUME, mount_path=s.storage_mount_path)])


def labels(spec: PodTask) -> dict[str, str]:
    return {**APP_LABELS, COMPONENT_LABEL: spec.step}


def env(spec: PodTask) -> dict[str, str]:
    values = {"PYTHONUNBUFFERED": "1", **spec.env}
    if spec.step == "tune":
        # Keras Tuner reads its worker id from here; the map index keeps it across retries.
        values.setdefault("KERASTUNER_TUNER_ID", "tuner-{{ ti.map_index }}")
    return values


def pod_kwargs(spec: PodTask, s: ClusterSettings) -> dict[str, Any]:
    """Everything KubernetesPodOperator needs to know about the pod of `spec` (not `arguments`)."""
    volumes, mounts = storage(s)
    return dict(
        name=pod_name_prefix(spec.task_id),
        namespace=s.namespace,
        image=images.parse(s.image, "TUNE_SERVE_TRAINER_IMAGE").for_pod(),
        image_pull_policy=s.image_pull_policy,
        cmds=spec.command,
        env_vars=env(spec),
        container_resources=resources(spec, s),
        node_selector=node_selector(spec, s),
        tolerations=tolerations(spec, s),
        affinity=affinity(spec, s),
        volumes=volumes,
        volume_mounts=mounts,
        security_context=pod_security_context(s),
        container_security_context=container_security_context(),
        service_account_name=s.service_account,
        automount_service_account_token=False,  # the trainer never calls the Kubernetes API
        labels=labels(spec),
        annotations={images.ANNOTATION: s.image, **({} if spec.preemptible else {SAFE_TO_EVICT: "false"})},
        active_deadline_seconds=int(spec.deadline.total_seconds()),
        # The trainer's one-line stderr reason lands in the container status (and the task's error).
        termination_message_policy="FallbackToLogsOnError",
        startup_timeout_seconds=s.startup_timeout_seconds,
        schedule_timeout_seconds=s.startup_timeout_seconds,
        on_finish_action=s.on_finish_action,
        get_logs=True,
        log_events_on_failure=True,
        # No XCom sidecar (reading it needs pods/exec): the result comes from the run's storage,
        # operators.ResultFileMixin.
        do_xcom_push=False,
        deferrable=s.deferrable,
        poll_interval=s.poll_interval_seconds,
    )


def pod_name_prefix(task_id: str) -> str:
    """`tuning.tune` → `tuning-tune`: KubernetesPodOperator adds a random suffix."""
    return re.sub(r"[^a-z0-9-]+", "-", task_id.lower()).strip("-")[:40] or "task"


def run_slug(dag_id: str, run_id: str) -> str:
    """A short DNS-safe name for one DAG run: `run_id` has colons and plus signs."""
    return hashlib.sha256(f"{dag_id}/{run_id}".encode()).hexdigest()[:10]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()
