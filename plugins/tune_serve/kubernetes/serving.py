"""Kubernetes serving backend: one TensorFlow Serving Deployment per model (also for `gke`).

A deployment:
0. stage: copy the SavedModel next to the versions, under a name TF Serving ignores
   (`{base_path}/.staging-<id>/`), then take the model's Lease (coordination.k8s.io, see
   `tune_serve.kubernetes.lease`): one deployment per model at a time, across runs and workers;
1. publish it as the next version: claim the number with a create-if-absent marker
   (`{base_path}/.versions/{version}`; `ifGenerationMatch=0` on GCS, O_EXCL on a volume),
   then move the staged copy to `{base_path}/{version}/` (one rename on a volume);
2. canary: a model config loading the stable and the new version, labels `stable` → old,
   `canary` → new, in a new immutable ConfigMap; point the Deployment at it and wait for the
   rolling update (a pod is ready only once its versions have loaded);
3. wait until the new version is AVAILABLE and smoke-test one prediction on it;
4. promote: `stable` → new, another rolling update, wait until `stable` resolves to it.

On any failure the Deployment is pointed back at the ConfigMap it had, so the old version
keeps serving (the new version stays on storage, labelled nowhere); a first deployment that
fails is removed. The state (loaded versions and labels) is an annotation on the
Deployment, read by `current_model` for the evaluation baseline. The Lease is released at
the end, whatever the outcome; a deployment that dies holding it blocks the model for one
lease duration at most.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from kubernetes.client.exceptions import ApiException

from tune_contract.enums import CANARY, STABLE
from tune_serve import config, storage
from tune_serve.kubernetes import clients, images, manifests
from tune_serve.kubernetes import settings as cluster_settings
from tune_serve.kubernetes.lease import Lease, LeaseLost, LeaseTimeout
from tune_serve.serving import deploy_decision, provenance
from tune_serve.serving.errors import ModelRejected, ServingUnavailable
from tune_serve.serving.rest_client import TFServingREST

log = logging.getLogger(__name__)
STATE_ANNOTATION = "tune-serve/serving-state"
MODEL_ANNOTATION = "tune-serve/model-name"  # whose Deployment this is, checked before touching it
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
    lease_seconds: int = 60           # a deployment that dies blocks its model this long at most
    lease_wait_seconds: float | None = None  # waiting for another deployment (default: 4 timeouts + a minute)

    @property
    def lease_wait(self) -> float:
        # a deployment is two rollouts and two REST waits of up to `timeout_seconds` each
        return self.lease_wait_seconds if self.lease_wait_seconds is not None else 4 * self.timeout_seconds + 60


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
        lease_seconds=int(config.setting("serving_lease_seconds", str(d.lease_seconds))),
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

OBJECT_PREFIX = "tfserving-"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_MAX_LABEL = 63  # a Service name and a label value are DNS-1123 labels


def object_name(model_name: str) -> str:
    """`tfserving-<model>`: one name per model, a valid DNS-1123 label.

    A model name that is a DNS label without `--` and fits (every name the DAG's Param
    allows) is used as it is. Any other is cleaned, cut to 40 characters and suffixed with
    `--` and a hash of the full name: only those names contain `--`, so no two models share
    a name (the Deployment also records its model, checked before it is touched)."""
    if _DNS_LABEL.fullmatch(model_name) and "--" not in model_name \
            and len(OBJECT_PREFIX) + len(model_name) <= _MAX_LABEL:
        return OBJECT_PREFIX + model_name
    cleaned = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")[:40].rstrip("-") or "model"
    return f"{OBJECT_PREFIX}{cleaned}--{hashlib.sha256(model_name.encode()).hexdigest()[:10]}"


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
    manifest["metadata"]["annotations"] = {STATE_ANNOTATION: state.to_json(), MODEL_ANNOTATION: model_name}
    spec = manifest["spec"]
    spec["replicas"] = ss.replicas
    spec["selector"]["matchLabels"].update(_labels(model_name))
    pod = spec["template"]
    pod["metadata"]["labels"].update(_labels(model_name))
    pod["spec"]["serviceAccountName"] = ss.service_account
    container = pod["spec"]["containers"][0]
    container["image"] = images.parse(ss.image, "TUNE_SERVE_SERVING_IMAGE").for_pod()
    pod["metadata"].setdefault("annotations", {})[images.ANNOTATION] = ss.image  # the tag, for people
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
    """Create/patch the objects of one model and follow its rollouts (CoreV1Api + AppsV1Api),
    serialised per model by a Lease (CoordinationV1Api)."""

    def __init__(self, core, apps, model_name: str, ss: ServingSettings, poll_seconds: float = 5, coordination=None):
        self.core, self.apps, self.coordination = core, apps, coordination
        self.model_name, self.ss, self.poll_seconds = model_name, ss, poll_seconds
        self.name = object_name(model_name)

    def lease(self) -> Lease:
        """The model's deploy Lease (not yet acquired)."""
        return Lease(self.coordination, f"{self.name}-deploy", self.ss.namespace, duration_seconds=self.ss.lease_seconds,
                     poll_seconds=min(2.0, self.ss.lease_seconds / 10), labels=_labels(self.model_name))

    def state(self) -> ServingState | None:
        """What the model's Deployment serves; ModelRejected if that Deployment is another model's."""
        try:
            current = self.apps.read_namespaced_deployment(name=self.name, namespace=self.ss.namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        owner = recorded_model(current)
        if owner != self.model_name:
            raise ModelRejected(f"Deployment {self.ss.namespace}/{self.name} belongs to model {owner!r}, not "
                                f"{self.model_name!r}; refusing to touch it (rename one of the models)")
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


def recorded_model(current) -> str | None:
    """The model a Deployment serves: its annotation, or (made before it existed) the model
    its readiness probe asks TF Serving about."""
    recorded = (current.metadata.annotations or {}).get(MODEL_ANNOTATION)
    if recorded is not None:
        return recorded
    try:
        probe = current.spec.template.spec.containers[0].readiness_probe.http_get.path
    except (AttributeError, IndexError, TypeError):
        return None
    return probe.removeprefix("/v1/models/") if probe and probe.startswith("/v1/models/") else None


def _ignore_missing(method, **kwargs) -> None:
    try:
        method(**kwargs)
    except ApiException as exc:
        if exc.status != 404:
            raise


# ---- storage ---------------------------------------------------------------------------------

def _path(uri: str):
    return storage.path(uri, cluster_settings.load().gcp_conn_id)


def stage(model_path: str, base_path: str):
    """Copy the SavedModel next to the versions, under a name TF Serving never loads."""
    source = _path(model_path)
    if not (source / "saved_model.pb").exists():
        raise ModelRejected(f"{model_path} is not a SavedModel directory (no saved_model.pb)")
    staged = _path(base_path) / f".staging-{uuid.uuid4().hex}"
    try:
        source.copy(staged, recursive=True)
    except BaseException:
        _remove(staged)
        raise
    return staged


def publish(staged, base_path: str, taken: tuple[int, ...] = (), record: bytes = b"") -> int:
    """Make a staged copy the next version. Call holding the model's Lease.

    The number is claimed with a create-if-absent marker, so that even two deployments that
    both believed they held the Lease never share a version directory; the marker holds the
    version's provenance (`record`), written once and never changed (an object on GCS is
    immutable). The copy then moves in with one rename on a volume (on GCS a copy into the
    claimed prefix, which TF Serving only loads once the model config names it)."""
    base = _path(base_path)
    markers = base / ".versions"
    existing = [int(p.name) for p in base.iterdir() if p.name.isdigit()] if base.exists() else []
    claimed = [int(p.name) for p in markers.iterdir() if p.name.isdigit()] if markers.exists() else []
    version = max([*existing, *claimed, *taken], default=0) + 1
    while not _create_if_absent(markers / str(version), record):
        version += 1
    target = base / str(version)
    if target.protocol in ("file", "local", ""):
        os.rename(staged.path, target.path)  # same directory: atomic, and fails if the target exists
    else:
        staged.fs.mv(staged.path, target.path, recursive=True)
    return version


def published(base_path: str) -> dict[int, bytes]:
    """{version: the provenance its marker holds} of every version on storage (b"" for a
    version published before markers held one)."""
    base = _path(base_path)
    if not base.exists():
        return {}
    markers = base / ".versions"
    found = {}
    for p in base.iterdir():
        if p.name.isdigit():
            marker = markers / p.name
            found[int(p.name)] = marker.read_bytes() if marker.exists() else b""
    return found


def _create_if_absent(path, content: bytes = b"") -> bool:
    """Write a marker only if none exists (O_EXCL locally, ifGenerationMatch=0 on GCS)."""
    if path.protocol in ("file", "local", ""):
        os.makedirs(os.path.dirname(path.path), exist_ok=True)
        try:
            fd = os.open(path.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "wb") as marker:
            marker.write(content)
        return True
    try:
        path.fs.pipe_file(path.path, content, mode="create")
    except FileExistsError:
        return False
    return True


def _remove(path) -> None:
    try:
        if path.exists():
            path.fs.rm(path.path, recursive=True)
    except OSError:
        log.warning("could not remove %s", path, exc_info=True)


# ---- the backend functions (tune_serve.serving) ---------------------------------------------

def cluster_for(model_name: str, ss: ServingSettings | None = None) -> TFServingCluster:
    from kubernetes.client import CoordinationV1Api

    ss = ss or serving_settings()
    hook = clients.kubernetes_hook(cluster_settings.load())
    return TFServingCluster(hook.core_v1_client, hook.apps_v1_client, model_name, ss,
                            coordination=CoordinationV1Api(hook.api_client))


def deploy(model_path: str, model_name: str, instance: dict, candidate: dict | None = None, *,
           cluster: TFServingCluster | None = None, rest: TFServingREST | None = None) -> dict[str, Any]:
    cluster = cluster or cluster_for(model_name)
    ss = cluster.ss
    previous = cluster.state()  # refuses another model's Deployment before anything is copied
    base_path = previous.base_path if previous else f"{config.serving_root().rstrip('/')}/{model_name}"
    staged = stage(model_path, base_path)  # the slow copy, outside the Lease
    record = provenance.record(candidate, model_path,
                               provenance.fingerprint(model_path, cluster_settings.load().gcp_conn_id))
    lease = cluster.lease()
    try:
        with lease.held(timeout=ss.lease_wait):
            if candidate is not None:
                decided = _decide_holding(cluster, model_name, staged, {**candidate, "fingerprint": record["fingerprint"]})
                if decided is not None:
                    return decided
            return _deploy_holding(lease, cluster, staged, model_name, instance, rest, provenance.dumps(record))
    except LeaseTimeout as exc:
        raise ServingUnavailable(f"another deployment of {model_name} is running: {exc}") from None
    finally:
        _remove(staged)  # still there unless published


def _decide_holding(cluster: TFServingCluster, model_name: str, staged, candidate: dict) -> dict[str, Any] | None:
    """deploy_decision under the Lease: the result when the candidate must not be published, else None."""
    state = cluster.state()
    stable = state.labels.get(STABLE) if state else None
    serving_path = f"{state.base_path.rstrip('/')}/{stable}" if state and stable is not None else None
    base_path = state.base_path if state else str(staged.parent)
    versions = {v: provenance.loads(p) for v, p in published(base_path).items()}
    decision = deploy_decision.decide(candidate, serving_path, versions)
    if decision.action == deploy_decision.PUBLISH:
        return None
    log.info("%s: %s", cluster.name, decision.reason)
    return {"model_name": model_name, "action": decision.action, "reason": decision.reason,
            "version": decision.version, "serving_version": stable, "url": rest_url(model_name, cluster.ss),
            "previous_version": None, "prediction": None}


def _deploy_holding(lease: Lease, cluster: TFServingCluster, staged, model_name: str, instance: dict,
                    rest: TFServingREST | None, record: bytes = b"") -> dict[str, Any]:
    ss = cluster.ss
    previous = cluster.state()  # again: another deployment may have finished while we waited
    base_path = previous.base_path if previous else f"{config.serving_root().rstrip('/')}/{model_name}"
    if _path(base_path) != staged.parent:
        raise ServingUnavailable(f"{cluster.name}: its base path changed to {base_path} while this deployment "
                                 "waited for the Lease; retry")
    lease.check()
    version = publish(staged, base_path, previous.versions if previous else (), record)
    canary = (previous or ServingState(base_path)).canary(version)
    rest = rest or TFServingREST(rest_url(model_name, ss), model_name)
    try:
        lease.check()
        cluster.apply(canary)  # the one step that makes the new version served (as canary)
        cluster.wait_rollout(ss.timeout_seconds)
        rest.wait_available(version, ss.timeout_seconds)
        prediction = rest.smoke_test(version, instance)
        promoted = canary.promoted(version)
        lease.check()
        cluster.apply(promoted)
        cluster.wait_rollout(ss.timeout_seconds)
        rest.wait_label(STABLE, version, ss.timeout_seconds)
    except BaseException as exc:
        if isinstance(exc, LeaseLost) or lease.lost:  # another deployment owns the model now
            log.error("%s: lost the deploy Lease; leaving the Deployment to its new holder", cluster.name)
        else:
            try:
                cluster.restore(previous)
            except Exception:  # keep the deployment's own error; the restore's is logged
                log.exception("restoring %s failed", cluster.name)
        if isinstance(exc, LeaseLost):
            raise ServingUnavailable(f"{cluster.name}: {exc}") from None
        raise
    finally:
        rest.close()
    keep = tuple(config_map(model_name, s, ss)["metadata"]["name"] for s in (promoted, *([previous] if previous else [])))
    cluster.prune_config_maps(keep=keep)
    replaced = previous.labels.get(STABLE) if previous else None
    return {"model_name": model_name, "action": deploy_decision.PUBLISH,
            "reason": f"v{version} replaces v{replaced}" if replaced is not None else "the first version",
            "version": version, "serving_version": version, "url": rest.predict_url(),
            "previous_version": replaced, "prediction": prediction}


def current_model(model_name: str, cluster: TFServingCluster | None = None) -> str | None:
    state = (cluster or cluster_for(model_name)).state()
    stable = state.labels.get(STABLE) if state else None
    return f"{state.base_path.rstrip('/')}/{stable}" if state and stable is not None else None


def version_labels(model_name: str, cluster: TFServingCluster | None = None) -> dict[str, int]:
    state = (cluster or cluster_for(model_name)).state()
    return {label: int(version) for label, version in (state.labels if state else {}).items()}
