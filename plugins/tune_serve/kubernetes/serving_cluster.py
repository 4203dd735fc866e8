"""The Kubernetes API side of TF Serving: one model's objects created, patched, rolled out, removed.

`TFServingCluster` applies a `ServingState` (its ConfigMap, the Deployment pointing at it, the
Service: `serving_manifests`), follows the rollout, restores what served before, prunes the
ConfigMaps no config uses, reads the state back from the Deployment's annotation (refusing a
Deployment recorded for another model), and hands out the model's deploy Lease. `cluster_for`
builds it from the Airflow Kubernetes connection.
"""
from __future__ import annotations

import time

from kubernetes.client.exceptions import ApiException

from tune_serve.kubernetes import clients
from tune_serve.kubernetes import settings as cluster_settings
from tune_serve.kubernetes.lease import Lease
from tune_serve.kubernetes.serving_manifests import (
    MODEL_ANNOTATION,
    STATE_ANNOTATION,
    ServingState,
    config_map,
    deployment,
    instance_labels,
    object_name,
    service,
)
from tune_serve.kubernetes.settings import ServingSettings, serving_settings
from tune_serve.serving.errors import ModelRejected, ServingUnavailable


class TFServingCluster:
    """Create/patch the objects of one model and follow its rollouts (CoreV1Api + AppsV1Api),
    serialised per model by a Lease (CoordinationV1Api)."""

    def __init__(self, core, apps, model_name: str, ss: ServingSettings, poll_seconds: float = 5,
                 coordination=None):
        self.core, self.apps, self.coordination = core, apps, coordination
        self.model_name, self.ss, self.poll_seconds = model_name, ss, poll_seconds
        self.name = object_name(model_name)

    def lease(self) -> Lease:
        """The model's deploy Lease (not yet acquired)."""
        return Lease(self.coordination, f"{self.name}-deploy", self.ss.namespace,
                     duration_seconds=self.ss.lease_seconds,
                     poll_seconds=min(2.0, self.ss.lease_seconds / 10),
                     labels=instance_labels(self.model_name))

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
        """Make the model serve `state`: its ConfigMap, then the Deployment pointing at it, and the
        Service."""
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
        selector = ",".join(f"{k}={v}" for k, v in instance_labels(self.model_name).items())
        for item in self.core.list_namespaced_config_map(namespace=self.ss.namespace,
                                                         label_selector=selector).items:
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


def cluster_for(model_name: str, ss: ServingSettings | None = None) -> TFServingCluster:
    from kubernetes.client import CoordinationV1Api

    ss = ss or serving_settings()
    hook = clients.kubernetes_hook(cluster_settings.load())
    return TFServingCluster(hook.core_v1_client, hook.apps_v1_client, model_name, ss,
                            coordination=CoordinationV1Api(hook.api_client))
