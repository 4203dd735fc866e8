"""Cluster settings of the kubernetes/gke backends, all read through `config.setting`.

Every name is configurable as `TUNE_SERVE_<NAME>` (environment) or the Airflow Variable
`tune_serve_<name>`; the defaults fit a GKE cluster laid out as `include/k8s/gke-node-pools.md`
describes. JSON-valued settings (node selectors, tolerations) take a JSON object or list.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from tune_serve import config

GKE_SPOT_LABEL = "cloud.google.com/gke-spot"
GKE_ACCELERATOR_LABEL = "cloud.google.com/gke-accelerator"
NVIDIA_GPU = "nvidia.com/gpu"

DEFAULT_SPOT_SELECTOR = {GKE_SPOT_LABEL: "true"}
DEFAULT_SPOT_TOLERATIONS = [{"key": GKE_SPOT_LABEL, "operator": "Equal", "value": "true",
                             "effect": "NoSchedule"}]
# GKE taints every GPU node with nvidia.com/gpu=present:NoSchedule.
DEFAULT_GPU_TOLERATIONS = [{"key": NVIDIA_GPU, "operator": "Exists", "effect": "NoSchedule"}]

ON_FINISH_ACTIONS = ("delete_pod", "delete_succeeded_pod", "keep_pod", "delete_active_pod")


def _flag(name: str, default: bool) -> bool:
    value = config.setting(name)
    if value is None:
        return default
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _json(name: str, default: Any) -> Any:
    value = config.setting(name)
    if value in (None, ""):
        return default
    try:
        return json.loads(value)
    except json.JSONDecodeError as exc:
        raise ValueError(f"TUNE_SERVE_{name.upper()}: not valid JSON ({exc})") from None


@dataclass(frozen=True)
class ClusterSettings:
    backend: str = "kubernetes"
    namespace: str = "tune-serve"
    kubernetes_conn_id: str = "kubernetes_default"
    # gke backend: where the cluster is (GKEStartPodOperator looks up endpoint and CA)
    gcp_conn_id: str = "google_cloud_default"
    gke_project: str | None = None
    gke_location: str | None = None
    gke_cluster: str | None = None
    gke_use_internal_ip: bool = False

    image: str = "ghcr.io/tune-serve/trainer:0.1.0"
    image_pull_policy: str = "IfNotPresent"
    service_account: str = "tune-serve-trainer"   # the pods' own account (GCS via Workload Identity)
    run_as_user: int = 1000                        # the trainer image's non-root user

    gpu_resource: str = NVIDIA_GPU
    gpu_accelerator: str | None = None             # e.g. nvidia-l4 → node selector gke-accelerator
    gpu_tolerations: list = field(default_factory=lambda: list(DEFAULT_GPU_TOLERATIONS))
    spot_node_selector: dict = field(default_factory=lambda: dict(DEFAULT_SPOT_SELECTOR))
    spot_tolerations: list = field(default_factory=lambda: list(DEFAULT_SPOT_TOLERATIONS))
    keep_off_spot: bool = True                     # non-preemptible pods avoid spot nodes (node affinity)

    on_finish_action: str = "delete_succeeded_pod"  # failed pods stay for debugging
    deferrable: bool = True
    startup_timeout_seconds: int = 900              # a GPU pool scaling up from zero takes minutes
    poll_interval_seconds: float = 10

    oracle_port: int = 8000
    oracle_restarts: int = 6                        # the chief Job's backoffLimit (disruptions do not count)

    # kubernetes backend without GCS: a ReadWriteMany claim mounted at storage_root in every pod
    storage_claim: str | None = None
    storage_mount_path: str = "/mnt/tune-serve"

    @property
    def is_gke(self) -> bool:
        return self.backend == "gke"


def load() -> ClusterSettings:
    """The settings in force now (read at DAG parse and again on the worker)."""
    backend = config.backend() if config.backend() in ("kubernetes", "gke") else "kubernetes"
    d = ClusterSettings()
    on_finish = config.setting("on_finish_action", d.on_finish_action)
    if on_finish not in ON_FINISH_ACTIONS:
        raise ValueError(f"TUNE_SERVE_ON_FINISH_ACTION: {on_finish!r} is not one of "
                         f"{', '.join(ON_FINISH_ACTIONS)}")
    if not _flag("keep_failed_pods", True) and on_finish == "delete_succeeded_pod":
        on_finish = "delete_pod"
    return ClusterSettings(
        backend=backend,
        namespace=config.setting("namespace", d.namespace),
        kubernetes_conn_id=config.setting("kubernetes_conn_id", d.kubernetes_conn_id),
        gcp_conn_id=config.setting("gcp_conn_id", d.gcp_conn_id),
        gke_project=config.setting("gke_project"),
        gke_location=config.setting("gke_location"),
        gke_cluster=config.setting("gke_cluster"),
        gke_use_internal_ip=_flag("gke_use_internal_ip", d.gke_use_internal_ip),
        image=config.trainer_image(),
        image_pull_policy=config.setting("image_pull_policy", d.image_pull_policy),
        service_account=config.setting("service_account", d.service_account),
        run_as_user=int(config.setting("run_as_user", str(d.run_as_user))),
        gpu_resource=config.setting("gpu_resource", d.gpu_resource),
        gpu_accelerator=config.setting("gpu_accelerator"),
        gpu_tolerations=_json("gpu_tolerations", d.gpu_tolerations),
        spot_node_selector=_json("spot_node_selector", d.spot_node_selector),
        spot_tolerations=_json("spot_tolerations", d.spot_tolerations),
        keep_off_spot=_flag("keep_off_spot", d.keep_off_spot),
        on_finish_action=on_finish,
        deferrable=_flag("deferrable", d.deferrable),
        startup_timeout_seconds=int(config.setting("startup_timeout_seconds",
                                                   str(d.startup_timeout_seconds))),
        poll_interval_seconds=float(config.setting("poll_interval_seconds", str(d.poll_interval_seconds))),
        oracle_port=int(config.setting("oracle_port", str(d.oracle_port))),
        oracle_restarts=int(config.setting("oracle_restarts", str(d.oracle_restarts))),
        storage_claim=config.setting("storage_claim"),
        storage_mount_path=config.setting("storage_mount_path", d.storage_mount_path),
    )


# ---- TF Serving (serving.deploy_serving) ----------------------------------------------------

@dataclass(frozen=True)
class ServingSettings:
    namespace: str = "tune-serve"
    image: str = "tensorflow/serving:2.20.0"
    replicas: int = 2
    cpu: str = "1"
    memory: str = "2Gi"
    service_account: str = "tune-serve-serving"
    url: str | None = None            # REST base URL when Airflow is outside the cluster (an ingress)
    timeout_seconds: float = 600      # each rollout, and each wait on the REST API
    storage_claim: str | None = None  # RWX claim holding serving_root (clusters without GCS)
    storage_mount_path: str = "/mnt/tune-serve"
    lease_seconds: int = 60           # a deployment that dies blocks its model this long at most
    lease_wait_seconds: float | None = None  # waiting for another deployment (default: 4 timeouts + a minute)

    @property
    def lease_wait(self) -> float:
        # a deployment is two rollouts and two REST waits of up to `timeout_seconds` each
        return (self.lease_wait_seconds if self.lease_wait_seconds is not None
                else 4 * self.timeout_seconds + 60)


def serving_settings() -> ServingSettings:
    d, cluster = ServingSettings(), load()
    return ServingSettings(
        namespace=cluster.namespace,
        image=config.setting("serving_image", d.image),
        replicas=int(config.setting("serving_replicas", str(d.replicas))),
        cpu=config.setting("serving_cpu", d.cpu),
        memory=config.setting("serving_memory", d.memory),
        service_account=config.setting("serving_service_account", d.service_account),
        url=config.setting("serving_url"),
        timeout_seconds=float(config.setting("serving_timeout", str(d.timeout_seconds))),
        storage_claim=cluster.storage_claim,
        storage_mount_path=cluster.storage_mount_path,
        lease_seconds=int(config.setting("serving_lease_seconds", str(d.lease_seconds))),
    )
