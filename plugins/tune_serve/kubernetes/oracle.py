"""The Keras Tuner chief on a cluster: a Job plus a ClusterIP Service, started, awaited, removed.

- `KubernetesStartOracleOperator` creates both and returns at once with the address tuner pods
  dial. The Job restarts a crashed or preempted chief (its podFailurePolicy does not count
  disruptions); the chief reloads its state from `{run_root}/tuning/`.
- `KubernetesWaitOracleSensor` waits for the Job (rescheduling, or deferred to the triggerer) and
  returns the chief's result, which the chief writes to shared storage (a Job pod has no
  XCom sidecar): `{run_root}/tuning/oracle_result.json`, read with ObjectStoragePath.
- `KubernetesStopOracleOperator` is the run's teardown: it deletes the Job and its pods; the
  Service, the search Secret and the NetworkPolicy go with the Job (owner references),
  also when the Job's TTL removes it.

The chief serves only calls carrying the run's search secret: a Secret with a fresh random
token, created with the Job and mounted into the chief and the run's tuner pods only
(`mount_search_secret`; Airflow never reads it back). A NetworkPolicy admits only pods
labelled as this run's tuners to the chief's port.

Names derive from (dag_id, run_id), so a retried task finds what an earlier try made.
"""
from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from datetime import timedelta
from functools import cached_property
from typing import Any, cast

from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook
from airflow.providers.cncf.kubernetes.operators.job import KubernetesJobOperator
from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from airflow.providers.cncf.kubernetes.triggers.job import KubernetesJobTrigger
from airflow.providers.google.cloud.operators.kubernetes_engine import GKEOperatorMixin, GKEStartJobOperator
from airflow.providers.google.cloud.triggers.kubernetes_engine import GKEJobTrigger
from airflow.sdk import BaseOperator, BaseSensorOperator, PokeReturnValue
from kubernetes.client import NetworkingV1Api
from kubernetes.client import models as k8s
from kubernetes.client.exceptions import ApiException

from tune_contract import enums, layout
from tune_contract.results import OracleHandle
from tune_serve import storage
from tune_serve.errors import PodFailed
from tune_serve.kubernetes import manifests
from tune_serve.kubernetes.pods import BASE_CONTAINER, COMPONENT_LABEL, RUN_LABEL, run_slug
from tune_serve.workflow import plan as planning
from tune_serve.workflow.backend import Handle, OracleFields

JOB_TEMPLATE = "oracle/job.yaml"
SERVICE_TEMPLATE = "oracle/service.yaml"
SECRET_TEMPLATE = "oracle/secret.yaml"
POLICY_TEMPLATE = "oracle/networkpolicy.yaml"
JOB_PREFIX = "job-"  # KubernetesJobOperator prefixes every Job name with it

SECRET_KEY = "token"
SECRET_VOLUME = "oracle-secret"
SECRET_MOUNT = "/var/run/secrets/tune-serve/oracle"
SECRET_FILE_ENV = enums.ORACLE_SECRET_FILE_ENV  # what the trainer's oracle and tune steps read
TUNER_COMPONENT = "tune"  # the component label of tuner pods (the PodTask's step)


class KubernetesOracleHandle(OracleHandle):
    """`start_oracle`'s XCom on Kubernetes: the chief's address and the names of what it made."""

    job: str
    service: str
    secret: str
    network_policy: str
    namespace: str
    result_uri: str  # where the chief leaves its result (`wait_oracle` reads it from storage)


def oracle_names(dag_id: str, run_id: str) -> dict[str, str]:
    base = f"oracle-{run_slug(dag_id, run_id)}"
    return {"name": base, "job": f"{JOB_PREFIX}{base}", "service": base, "secret": base,
            "network_policy": base}


def mount_search_secret(pod_spec: k8s.V1PodSpec, secret_name: str) -> None:
    """The run's search secret as a read-only file in the base container, named by
    KERASTUNER_ORACLE_SECRET_FILE (for the chief and the run's tuners only)."""
    if not any(v.name == SECRET_VOLUME for v in pod_spec.volumes or []):
        # 0440: the file belongs to root and the pod's fsGroup, which the non-root user is in
        pod_spec.volumes = [*(pod_spec.volumes or []), k8s.V1Volume(
            name=SECRET_VOLUME, secret=k8s.V1SecretVolumeSource(
                secret_name=secret_name, default_mode=0o440,
                items=[k8s.V1KeyToPath(key=SECRET_KEY, path=SECRET_KEY)]))]
    base = next(c for c in pod_spec.containers if c.name == BASE_CONTAINER)
    if not any(m.name == SECRET_VOLUME for m in base.volume_mounts or []):
        base.volume_mounts = [*(base.volume_mounts or []),
                              k8s.V1VolumeMount(name=SECRET_VOLUME, mount_path=SECRET_MOUNT, read_only=True)]
    base.env = [e for e in base.env or [] if e.name != SECRET_FILE_ENV] + [
        k8s.V1EnvVar(name=SECRET_FILE_ENV, value=f"{SECRET_MOUNT}/{SECRET_KEY}")]


def _owner_references(owner: k8s.V1Job | None) -> list[dict]:
    if owner is None or not owner.metadata.uid:
        return []
    return [{"apiVersion": "batch/v1", "kind": "Job", "name": owner.metadata.name, "uid": owner.metadata.uid}]


def secret_manifest(names: Mapping[str, Any], namespace: str, slug: str, token: str,
                    owner: k8s.V1Job | None) -> dict:
    secret = manifests.named(manifests.load(SECRET_TEMPLATE), names["secret"], namespace, {RUN_LABEL: slug})
    secret["stringData"] = {SECRET_KEY: token}
    if _owner_references(owner):
        secret["metadata"]["ownerReferences"] = _owner_references(owner)
    return secret


def network_policy_manifest(names: Mapping[str, Any], namespace: str, slug: str, port: int,
                            owner: k8s.V1Job | None) -> dict:
    """Ingress to this run's chief pod: from this run's tuner pods, on the chief's port only."""
    policy = manifests.named(manifests.load(POLICY_TEMPLATE), names["network_policy"], namespace,
                             {RUN_LABEL: slug})
    policy["spec"]["podSelector"]["matchLabels"] = {COMPONENT_LABEL: "oracle", RUN_LABEL: slug}
    policy["spec"]["ingress"] = [{
        "from": [{"podSelector": {"matchLabels": {COMPONENT_LABEL: TUNER_COMPONENT, RUN_LABEL: slug}}}],
        "ports": [{"protocol": "TCP", "port": port}]}]
    if _owner_references(owner):
        policy["metadata"]["ownerReferences"] = _owner_references(owner)
    return policy


def result_uri(oracle_args: dict[str, Any]) -> str:
    """Where the chief leaves its result: `{run_root}/tuning/oracle_result.json` (tune_contract.layout)."""
    run_root = oracle_args.get("run_root")
    if not run_root:
        raise PodFailed("the oracle's arguments carry no run_root; cannot place its result")
    return layout.oracle_result(str(run_root))


def read_result(uri: str, conn_id: str | None = None) -> dict:
    path = storage.path(uri, conn_id)
    if not path.exists():
        raise PodFailed(f"the chief finished but left no result at {uri}")
    return json.loads(path.read_text())


def service_manifest(names: Mapping[str, Any], namespace: str, slug: str, port: int,
                     owner: k8s.V1Job | None) -> dict:
    service = manifests.named(manifests.load(SERVICE_TEMPLATE), names["service"], namespace,
                              {RUN_LABEL: slug})
    service["spec"]["selector"] = {COMPONENT_LABEL: "oracle", RUN_LABEL: slug}
    service["spec"]["ports"][0]["port"] = port
    if _owner_references(owner):
        service["metadata"]["ownerReferences"] = _owner_references(owner)
    return service


class _RenderablePod(KubernetesPodOperator):
    """Lets the Job's pod template be built without a cluster (for render_k8s and tests)."""

    _render_only = False

    def build_pod_request_obj(self, context=None, *, dry_run: bool = False) -> k8s.V1Pod:
        return super().build_pod_request_obj(context, dry_run=dry_run or self._render_only)


class KubernetesStartOracleOperator(KubernetesJobOperator, _RenderablePod):
    """Start the chief Job and its Service (through an Airflow Kubernetes connection) and return at once."""

    template_fields = (*KubernetesJobOperator.template_fields, "oracle_args")
    namespace: str  # always given (tune_serve.kubernetes.backend passes ClusterSettings.namespace)

    def __init__(self, *, oracle_args: OracleFields, oracle_port: int = 8000, **kwargs) -> None:
        """`oracle_args`: the plan's `OracleArgs` fields; the chief's command line adds where it
        listens and where it leaves its result."""
        kwargs.setdefault("job_template_file", str(manifests.path(JOB_TEMPLATE)))
        super().__init__(wait_until_job_complete=False, do_xcom_push=False, get_logs=False,
                         random_name_suffix=False, **kwargs)
        self.oracle_args = cast("dict[str, Any]", oracle_args)  # a template field: rendered before execute
        self.oracle_port = oracle_port

    @cached_property
    def networking(self) -> NetworkingV1Api:
        return NetworkingV1Api(self.hook.api_client)

    def build_job_request_obj(self, context=None) -> k8s.V1Job:
        job = super().build_job_request_obj(context)
        # Replace, not merge with, the template's port: the Service targets it by name.
        job.spec.template.spec.containers[0].ports = [
            k8s.V1ContainerPort(name="oracle", container_port=self.oracle_port)]
        mount_search_secret(job.spec.template.spec,
                            oracle_names(context["dag"].dag_id, context["run_id"])["secret"])
        return job

    def _prepare(self, context) -> KubernetesOracleHandle:
        """Run-specific names, labels, flags and environment; returns the handle."""
        names = oracle_names(context["dag"].dag_id, context["run_id"])
        slug = run_slug(context["dag"].dag_id, context["run_id"])
        uri = result_uri(self.oracle_args)
        self.name = names["name"]
        self.labels = {**self.labels, RUN_LABEL: slug}
        self.arguments = planning.oracle_arguments(self.oracle_args, port=self.oracle_port, bind="0.0.0.0",
                                                   xcom_file=uri)
        env = (dict(self.env_vars) if isinstance(self.env_vars, dict)
               else {e.name: e.value for e in self.env_vars})
        self.env_vars = {**env, "KERASTUNER_TUNER_ID": "chief", "KERASTUNER_ORACLE_IP": "0.0.0.0",
                         "KERASTUNER_ORACLE_PORT": str(self.oracle_port)}
        return {"address": f"{names['service']}.{self.namespace}.svc.cluster.local:{self.oracle_port}",
                "job": names["job"], "service": names["service"], "secret": names["secret"],
                "network_policy": names["network_policy"], "namespace": self.namespace, "result_uri": uri}

    def render(self, context) -> list[dict]:
        """The Secret, Job, Service and NetworkPolicy this task would create, as API manifests
        (no cluster needed; the Secret with a placeholder instead of a token)."""
        from kubernetes.client import ApiClient

        handle = self._prepare(context)
        self._render_only = True
        try:
            job = self.build_job_request_obj(context)
        finally:
            self._render_only = False
        slug = run_slug(context["dag"].dag_id, context["run_id"])
        placeholder = manifests.load(SECRET_TEMPLATE)["stringData"][SECRET_KEY]
        return [secret_manifest(handle, self.namespace, slug, placeholder, None),
                ApiClient().sanitize_for_serialization(job),
                service_manifest(handle, self.namespace, slug, self.oracle_port, None),
                network_policy_manifest(handle, self.namespace, slug, self.oracle_port, None)]

    def execute(self, context) -> KubernetesOracleHandle:
        handle = self._prepare(context)
        slug = run_slug(context["dag"].dag_id, context["run_id"])
        super().execute(context)
        job = self.hook.get_job(job_name=handle["job"], namespace=self.namespace)
        try:
            # Owned by the Job: deleting it (teardown, its TTL, or just below) removes them all, so
            # Airflow needs only `create` on Secrets and never reads one. The chief's pod waits for
            # its Secret volume if it is scheduled before the Secret exists (the kubelet retries).
            self._create(self.hook.core_v1_client.create_namespaced_secret,
                         secret_manifest(handle, self.namespace, slug, secrets.token_urlsafe(32), job))
            self._create(self.hook.core_v1_client.create_namespaced_service,
                         service_manifest(handle, self.namespace, slug, self.oracle_port, job))
            self._create(self.networking.create_namespaced_network_policy,
                         network_policy_manifest(handle, self.namespace, slug, self.oracle_port, job))
        except ApiException:
            self.log.error("Could not create the chief's Secret, Service or NetworkPolicy; removing its Job")
            self.hook.batch_v1_client.delete_namespaced_job(
                name=handle["job"], namespace=self.namespace, propagation_policy="Background")
            raise
        self.log.info("Chief Job %s started; tuners reach it at %s", handle["job"], handle["address"])
        return handle

    def _create(self, create, body: dict) -> None:
        try:
            create(namespace=self.namespace, body=body)
        except ApiException as exc:
            if exc.status != 409:  # 409: made by an earlier try of this task (a Secret keeps its token)
                raise

    def create_job(self, job_request_obj: k8s.V1Job) -> k8s.V1Job:
        try:
            return super().create_job(job_request_obj)
        except ApiException as exc:
            if exc.status != 409:
                raise
            self.log.info("Chief Job %s exists already (earlier try); keeping it",
                          job_request_obj.metadata.name)
            return job_request_obj


class GKEStartOracleOperator(KubernetesStartOracleOperator, GKEStartJobOperator):
    """Start the chief Job and its Service on GKE."""


def _gke_cluster(operator, *, location: str, cluster_name: str, project_id: str | None,
                 gcp_conn_id: str, use_internal_ip: bool) -> None:
    """Set the attributes GKEOperatorMixin's hooks read (cluster endpoint and credentials)."""
    operator.location, operator.cluster_name, operator.project_id = location, cluster_name, project_id
    operator.gcp_conn_id, operator.use_internal_ip = gcp_conn_id, use_internal_ip
    operator.use_dns_endpoint, operator.impersonation_chain = False, None


class KubernetesWaitOracleSensor(BaseSensorOperator):
    """Wait for the chief Job without holding a worker slot; return the chief's result."""

    template_fields = ("handle",)

    def __init__(self, *, handle: Handle, kubernetes_conn_id: str | None = None,
                 storage_conn_id: str | None = None, deferrable: bool = False, **kwargs) -> None:
        kwargs.setdefault("mode", "reschedule")
        super().__init__(**kwargs)
        self.handle = cast(KubernetesOracleHandle, handle)  # a template field: rendered before execute
        self.kubernetes_conn_id = kubernetes_conn_id
        self.storage_conn_id = storage_conn_id
        self.deferrable = deferrable

    @cached_property
    def hook(self) -> KubernetesHook:
        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    def execute(self, context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        done = self.poke(context)
        if isinstance(done, PokeReturnValue) and done:
            return done.xcom_value
        self.defer(trigger=self._trigger(), method_name="execute_complete",
                   timeout=timedelta(seconds=self.timeout) if self.timeout else None)

    def poke(self, context) -> bool | PokeReturnValue:
        try:
            job = self.hook.get_job_status(job_name=self.handle["job"], namespace=self.handle["namespace"])
        except ApiException as exc:
            if exc.status == 404:
                raise PodFailed(f"the chief Job {self.handle['job']} no longer exists (deleted?)") from exc
            raise
        if not self.hook.is_job_complete(job=job):
            return False
        if self.hook.is_job_failed(job=job):
            failed = next(c for c in job.status.conditions if c.type == "Failed")
            # e.g. PodFailurePolicy: "... exited with code 2 matching FailJob rule" (bad input),
            # BackoffLimitExceeded
            raise PodFailed(f"the chief Job {self.handle['job']} failed: {failed.reason}: "
                            f"{failed.message or ''}")
        return PokeReturnValue(is_done=True, xcom_value=self._result())

    def execute_complete(self, context, event: dict[str, Any]) -> dict:
        if event.get("status") != "success":
            raise PodFailed(f"the chief Job {self.handle['job']}: {event.get('message')}")
        return self._result()

    def _result(self) -> dict:
        result = read_result(self.handle["result_uri"], self.storage_conn_id)
        self.log.info("The chief finished: %s of %s trials",
                      result.get("completed"), result.get("max_trials"))
        return result

    def _trigger(self):
        return KubernetesJobTrigger(
            job_name=self.handle["job"], job_namespace=self.handle["namespace"], pod_names=[],
            pod_namespace=self.handle["namespace"], base_container_name=BASE_CONTAINER,
            kubernetes_conn_id=self.kubernetes_conn_id, poll_interval=self.poke_interval,
            get_logs=False, do_xcom_push=False)


class GKEWaitOracleSensor(GKEOperatorMixin, KubernetesWaitOracleSensor):
    def __init__(self, *, location: str, cluster_name: str, project_id: str | None = None,
                 gcp_conn_id: str = "google_cloud_default", use_internal_ip: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        _gke_cluster(self, location=location, cluster_name=cluster_name, project_id=project_id,
                     gcp_conn_id=gcp_conn_id, use_internal_ip=use_internal_ip)

    def _trigger(self):
        return GKEJobTrigger(
            cluster_url=self.cluster_url, ssl_ca_cert=self.ssl_ca_cert, job_name=self.handle["job"],
            job_namespace=self.handle["namespace"], pod_names=[], pod_namespace=self.handle["namespace"],
            base_container_name=BASE_CONTAINER, gcp_conn_id=self.gcp_conn_id,
            poll_interval=self.poke_interval, get_logs=False, do_xcom_push=False)


class KubernetesStopOracleOperator(BaseOperator):
    """Teardown: delete the chief Job with its pods (and so its Service), whatever the run's outcome."""

    template_fields = ("handle",)

    def __init__(self, *, handle: Handle, namespace: str, kubernetes_conn_id: str | None = None,
                 **kwargs) -> None:
        super().__init__(**kwargs)
        # a template field: rendered before execute
        self.handle = cast("KubernetesOracleHandle | None", handle)
        self.namespace = namespace
        self.kubernetes_conn_id = kubernetes_conn_id

    @cached_property
    def hook(self) -> KubernetesHook:
        return KubernetesHook(conn_id=self.kubernetes_conn_id)

    def execute(self, context) -> None:
        # No handle when start_oracle failed half-way: the names are the run's all the same.
        handle: dict[str, Any] = {**oracle_names(context["dag"].dag_id, context["run_id"]),
                                  "namespace": self.namespace, **(self.handle or {})}
        namespace = handle["namespace"]
        self._delete(self.hook.batch_v1_client.delete_namespaced_job, handle["job"], namespace,
                     propagation_policy="Background")
        self._delete(self.hook.core_v1_client.delete_namespaced_service, handle["service"], namespace)
        # The search Secret and the NetworkPolicy go with the Job (owner references).

    def _delete(self, method, name: str, namespace: str, **kwargs) -> None:
        try:
            method(name=name, namespace=namespace, **kwargs)
            self.log.info("Deleted %s/%s", namespace, name)
        except ApiException as exc:
            if exc.status != 404:
                raise
            self.log.info("%s/%s is gone already", namespace, name)


class GKEStopOracleOperator(GKEOperatorMixin, KubernetesStopOracleOperator):
    def __init__(self, *, location: str, cluster_name: str, project_id: str | None = None,
                 gcp_conn_id: str = "google_cloud_default", use_internal_ip: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        _gke_cluster(self, location=location, cluster_name=cluster_name, project_id=project_id,
                     gcp_conn_id=gcp_conn_id, use_internal_ip=use_internal_ip)
