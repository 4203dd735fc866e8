"""Kubernetes serving backend: one TensorFlow Serving Deployment per model (also for `gke`).

A deployment:
1. copy the SavedModel to `{serving_root}/{model_name}/{version}/` (the next version);
2. canary: a model config loading the stable and the new version, labels `stable` → old,
   `canary` → new, in a new immutable ConfigMap; point the Deployment at it and wait for the
   rolling update (a pod is ready only once its versions have loaded);
3. wait until the new version is AVAILABLE and smoke-test one prediction on it;
4. promote: `stable` → new, another rolling update, wait until `stable` resolves to it.

On any failure the Deployment is pointed back at the ConfigMap it had, so the old version
keeps serving (the new version stays on storage, labelled nowhere); a first deployment that
fails is removed. The state (loaded versions and labels) is an annotation on the
Deployment, read by `current_model` for the evaluation baseline.
"""
from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from tune_serve import config
from tune_serve.k8s import clients, manifests, settings as cluster_settings

from .errors import ModelRejected, ServingUnavailable
from .model_store import CANARY, STABLE
from .rest_client import TFServingREST

STATE_ANNOTATION = "tune-serve/serving-state"
INSTANCE_LABEL = "app.kubernetes.io/instance"
CONFIG_FILE = "models.config"
REST_PORT, GRPC_PORT = 8501, 8500


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


def serving_settings() -> ServingSettings:
    d, cluster = ServingSettings(), cluster_settings.load()
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
    )


@dataclass(frozen=True)
class ServingState:
    """What TF Serving loads (`versions`) and where the labels point."""

    base_path: str
    versions: tuple[int, ...] = ()
    labels: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"base_path": self.base_path, "versions": list(self.versions), "labels": self.labels},
                          sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServingState:
        data = json.loads(text)
        return cls(data["base_path"], tuple(data["versions"]), {k: int(v) for k, v in data["labels"].items()})

    def canary(self, version: int) -> ServingState:
        stable = self.labels.get(STABLE)
        return ServingState(self.base_path, tuple(sorted({*([stable] if stable else []), version})),
                            {**({STABLE: stable} if stable else {}), CANARY: version})

    def promoted(self, version: int) -> ServingState:
        return ServingState(self.base_path, self.versions, {STABLE: version})


# ---- the objects ----------------------------------------------------------------------------

def object_name(model_name: str) -> str:
    return "tfserving-" + re.sub(r"[^a-z0-9-]+", "-", model_name.lower()).strip("-")[:40]


def model_config(model_name: str, state: ServingState) -> str:
    """TF Serving's ModelServerConfig, protobuf text format."""
    versions = " ".join(f"versions: {v}" for v in state.versions)
    labels = "".join(f'\n    version_labels {{ key: "{k}" value: {v} }}' for k, v in sorted(state.labels.items()))
    return (f'model_config_list {{\n  config {{\n    name: "{model_name}"\n    base_path: "{state.base_path}"\n'
            f'    model_platform: "tensorflow"\n    model_version_policy {{ specific {{ {versions} }} }}{labels}\n'
            f"  }}\n}}\n")


def _labels(model_name: str) -> dict[str, str]:
    return {INSTANCE_LABEL: object_name(model_name).removeprefix("tfserving-")}


def config_map(model_name: str, state: ServingState, ss: ServingSettings) -> dict:
    text = model_config(model_name, state)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    manifest = manifests.named(manifests.load("serving/configmap.yaml"), f"{object_name(model_name)}-{digest}",
                               ss.namespace, _labels(model_name))
    manifest["metadata"]["annotations"] = {STATE_ANNOTATION: state.to_json()}
    manifest["data"] = {CONFIG_FILE: text}
    return manifest


def deployment(model_name: str, state: ServingState, ss: ServingSettings) -> dict:
    manifest = manifests.named(manifests.load("serving/deployment.yaml"), object_name(model_name), ss.namespace,
                               _labels(model_name))
    manifest["metadata"]["annotations"] = {STATE_ANNOTATION: state.to_json()}
    spec = manifest["spec"]
    spec["replicas"] = ss.replicas
    spec["selector"]["matchLabels"].update(_labels(model_name))
    pod = spec["template"]
    pod["metadata"]["labels"].update(_labels(model_name))
    pod["spec"]["serviceAccountName"] = ss.service_account
    container = pod["spec"]["containers"][0]
    container["image"] = ss.image
    resources = container["resources"]  # ephemeral storage: the file's policy
    resources["requests"].update(cpu=ss.cpu, memory=ss.memory)
    resources["limits"]["memory"] = ss.memory
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        container[probe]["httpGet"]["path"] = f"/v1/models/{model_name}"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    volumes["config"]["configMap"]["name"] = config_map(model_name, state, ss)["metadata"]["name"]
    if ss.storage_claim:
        pod["spec"]["volumes"].append({"name": "models", "persistentVolumeClaim": {"claimName": ss.storage_claim,
                                                                                  "readOnly": True}})
        container["volumeMounts"].append({"name": "models", "mountPath": ss.storage_mount_path, "readOnly": True})
    return manifest


def service(model_name: str, ss: ServingSettings) -> dict:
    manifest = manifests.named(manifests.load("serving/service.yaml"), object_name(model_name), ss.namespace,
                               _labels(model_name))
    manifest["spec"]["selector"].update(_labels(model_name))
    return manifest


def render(model_name: str, state: ServingState, ss: ServingSettings | None = None) -> list[dict]:
    """Every object a deployment in `state` consists of (render_k8s, tests)."""
    ss = ss or serving_settings()
    return [config_map(model_name, state, ss), deployment(model_name, state, ss), service(model_name, ss)]


def rest_url(model_name: str, ss: ServingSettings) -> str:
    return ss.url or f"http://{object_name(model_name)}.{ss.namespace}.svc.cluster.local:{REST_PORT}"


# ---- the cluster side -----------------------------------------------------------------------

class TFServingCluster:
    """Create/patch the objects of one model and follow its rollouts (CoreV1Api + AppsV1Api)."""

    def __init__(self, core, apps, model_name: str, ss: ServingSettings, poll_seconds: float = 5):
        self.core, self.apps = core, apps
        self.model_name, self.ss, self.poll_seconds = model_name, ss, poll_seconds
        self.name = object_name(model_name)

    def state(self) -> ServingState | None:
        try:
            current = self.apps.read_namespaced_deployment(name=self.name, namespace=self.ss.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        annotation = (current.metadata.annotations or {}).get(STATE_ANNOTATION)
        return ServingState.from_json(annotation) if annotation else None

    def apply(self, state: ServingState) -> None:
        """Make the model serve `state`: its ConfigMap, then the Deployment pointing at it, and the Service."""
        self._create(self.core.create_namespaced_config_map, config_map(self.model_name, state, self.ss))
        body = deployment(self.model_name, state, self.ss)
        try:
            self.apps.patch_namespaced_deployment(name=self.name, namespace=self.ss.namespace, body=body)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.apps.create_namespaced_deployment(namespace=self.ss.namespace, body=body)
        self._create(self.core.create_namespaced_service, service(self.model_name, self.ss))

    def wait_rollout(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            d = self.apps.read_namespaced_deployment_status(name=self.name, namespace=self.ss.namespace)
            status, wanted = d.status, d.spec.replicas
            stalled = next((c for c in status.conditions or []
                            if c.type == "Progressing" and c.reason == "ProgressDeadlineExceeded"), None)
            if stalled is not None:
                raise ModelRejected(f"{self.name}: rollout stalled: {stalled.message}")
            if ((status.observed_generation or 0) >= d.metadata.generation
                    and (status.updated_replicas or 0) == wanted and (status.replicas or 0) == wanted
                    and (status.available_replicas or 0) == wanted):
                return
            if time.monotonic() > deadline:
                raise ServingUnavailable(f"{self.name}: rollout not finished within {timeout:.0f}s "
                                         f"({status.updated_replicas or 0}/{wanted} updated, "
                                         f"{status.available_replicas or 0} available)")
            time.sleep(self.poll_seconds)

    def restore(self, previous: ServingState | None) -> None:
        """Back to what served before; nothing served before → remove what this deployment made."""
        if previous is not None:
            self.apply(previous)
            self.wait_rollout(self.ss.timeout_seconds)
            return
        for delete, name in ((self.apps.delete_namespaced_deployment, self.name),
                             (self.core.delete_namespaced_service, self.name)):
            _ignore_missing(delete, name=name, namespace=self.ss.namespace)
        self.prune_config_maps(keep=())

    def prune_config_maps(self, keep: tuple[str, ...]) -> None:
        """ConfigMaps of configs no longer in force (each deployment leaves one behind)."""
        selector = ",".join(f"{k}={v}" for k, v in _labels(self.model_name).items())
        for item in self.core.list_namespaced_config_map(namespace=self.ss.namespace, label_selector=selector).items:
            if item.metadata.name not in keep:
                _ignore_missing(self.core.delete_namespaced_config_map, name=item.metadata.name,
                                namespace=self.ss.namespace)

    def _create(self, create, body: dict) -> None:
        try:
            create(namespace=self.ss.namespace, body=body)
        except ApiException as exc:
            if exc.status != 409:  # exists: ConfigMaps are named by content, the Service never changes
                raise


def _ignore_missing(method, **kwargs) -> None:
    try:
        method(**kwargs)
    except ApiException as exc:
        if exc.status != 404:
            raise


# ---- storage ---------------------------------------------------------------------------------

def _path(uri: str):
    from airflow.sdk import ObjectStoragePath

    if "://" not in uri:
        return ObjectStoragePath(f"file://{uri}")
    conn_id = cluster_settings.load().gcp_conn_id if uri.startswith("gs://") else None
    return ObjectStoragePath(uri, conn_id=conn_id)


def publish(model_path: str, base_path: str, taken: tuple[int, ...] = ()) -> int:
    """Copy the SavedModel in as the next version; versions only grow and are never overwritten."""
    source = _path(model_path)
    if not (source / "saved_model.pb").exists():
        raise ModelRejected(f"{model_path} is not a SavedModel directory (no saved_model.pb)")
    base = _path(base_path)
    existing = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.exists() else []
    version = max([*existing, *taken], default=0) + 1
    # TF Serving loads only the versions its config names, so a half-copied one is never served.
    source.copy(base / str(version), recursive=True)
    return version


# ---- the backend functions (tune_serve.serving) ---------------------------------------------

def cluster_for(model_name: str, ss: ServingSettings | None = None) -> TFServingCluster:
    ss = ss or serving_settings()
    hook = clients.kubernetes_hook(cluster_settings.load())
    return TFServingCluster(hook.core_v1_client, hook.apps_v1_client, model_name, ss)


def deploy(model_path: str, model_name: str, instance: dict, cluster: TFServingCluster | None = None,
           rest: TFServingREST | None = None) -> dict[str, Any]:
    cluster = cluster or cluster_for(model_name)
    ss = cluster.ss
    previous = cluster.state()
    base_path = previous.base_path if previous else f"{config.serving_root().rstrip('/')}/{model_name}"
    version = publish(model_path, base_path, previous.versions if previous else ())
    canary = (previous or ServingState(base_path)).canary(version)
    rest = rest or TFServingREST(rest_url(model_name, ss), model_name)
    try:
        cluster.apply(canary)
        cluster.wait_rollout(ss.timeout_seconds)
        rest.wait_available(version, ss.timeout_seconds)
        prediction = rest.smoke_test(version, instance)
        promoted = canary.promoted(version)
        cluster.apply(promoted)
        cluster.wait_rollout(ss.timeout_seconds)
        rest.wait_label(STABLE, version, ss.timeout_seconds)
    except BaseException:
        try:
            cluster.restore(previous)
        except Exception:  # keep the deployment's own error; the restore's is logged
            import logging

            logging.getLogger(__name__).exception("restoring %s failed", cluster.name)
        raise
    finally:
        rest.close()
    keep = tuple(config_map(model_name, s, ss)["metadata"]["name"] for s in (promoted, *([previous] if previous else [])))
    cluster.prune_config_maps(keep=keep)
    return {"model_name": model_name, "version": version, "url": rest.predict_url(),
            "previous_version": previous.labels.get(STABLE) if previous else None, "prediction": prediction}


def current_model(model_name: str, cluster: TFServingCluster | None = None) -> str | None:
    state = (cluster or cluster_for(model_name)).state()
    stable = state.labels.get(STABLE) if state else None
    return f"{state.base_path.rstrip('/')}/{stable}" if stable is not None else None
