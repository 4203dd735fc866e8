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

This module is the order of those steps. The pieces: `serving_manifests` (the objects, rendered),
`serving_cluster` (the Kubernetes API: apply, roll out, restore, the Lease), `serving_versions`
(storage: stage, the versions and their markers), and `tune_serve.serving.publisher`, which the
local backend publishes through too (the decision, the provenance, the labels, the result).
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

from tune_contract.enums import STABLE
from tune_serve import config
from tune_serve.kubernetes import settings as cluster_settings
from tune_serve.kubernetes.lease import Lease, LeaseLost, LeaseTimeout
from tune_serve.kubernetes.serving_cluster import TFServingCluster, cluster_for
from tune_serve.kubernetes.serving_manifests import ServingState, config_map, rest_url
from tune_serve.kubernetes.serving_versions import VersionDir, remove, stage
from tune_serve.serving import deploy_decision, provenance
from tune_serve.serving.deploy_decision import DeployResult
from tune_serve.serving.errors import ServingUnavailable
from tune_serve.serving.publisher import Publisher
from tune_serve.serving.rest_client import TFServingREST

log = logging.getLogger(__name__)


def deploy(model_path: str, model_name: str, instance: dict[str, Any],
           candidate: dict[str, Any] | None = None, *, cluster: TFServingCluster | None = None,
           rest: TFServingREST | None = None) -> DeployResult:
    cluster = cluster or cluster_for(model_name)
    ss = cluster.ss
    previous = cluster.state()  # refuses another model's Deployment before anything is copied
    base_path = previous.base_path if previous else _default_base_path(model_name)
    staged = stage(model_path, base_path)  # the slow copy, outside the Lease
    fingerprint = provenance.fingerprint(model_path, cluster_settings.load().gcp_conn_id)
    lease = cluster.lease()
    try:
        with lease.held(timeout=ss.lease_wait):
            state = cluster.state()
            stable = state.labels.get(STABLE) if state else None
            serving_path = f"{state.base_path.rstrip('/')}/{stable}" if state and stable is not None else None
            publisher = Publisher(model_name, VersionDir(state.base_path if state else str(staged.parent)),
                                  model_path, fingerprint, candidate)
            held = publisher.held(serving_path, stable, rest_url(model_name, ss))
            if held is not None:
                return held
            return _deploy_holding(lease, cluster, staged, publisher, instance, rest)
    except LeaseTimeout as exc:
        raise ServingUnavailable(f"another deployment of {model_name} is running: {exc}") from None
    finally:
        remove(staged)  # still there unless published


def _default_base_path(model_name: str) -> str:
    return f"{config.serving_root().rstrip('/')}/{model_name}"


def _deploy_holding(lease: Lease, cluster: TFServingCluster, staged: Any, publisher: Publisher,
                    instance: dict[str, Any], rest: TFServingREST | None) -> DeployResult:
    ss, model_name = cluster.ss, publisher.model_name
    previous = cluster.state()  # again: another deployment may have finished while we waited
    base_path = previous.base_path if previous else _default_base_path(model_name)
    versions = VersionDir(base_path, previous.versions if previous else ())
    if staged.parent != versions.root():
        raise ServingUnavailable(f"{cluster.name}: its base path changed to {base_path} while this "
                                 "deployment waited for the Lease; retry")
    lease.check()
    version = dataclasses.replace(publisher, store=versions).publish(staged)
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
    keep = tuple(config_map(model_name, s, ss)["metadata"]["name"]
                 for s in (promoted, *([previous] if previous else [])))
    cluster.prune_config_maps(keep=keep)
    replaced = previous.labels.get(STABLE) if previous else None
    return deploy_decision.published(model_name, version, replaced, rest.predict_url(), prediction)


def current_model(model_name: str, cluster: TFServingCluster | None = None) -> str | None:
    state = (cluster or cluster_for(model_name)).state()
    stable = state.labels.get(STABLE) if state else None
    return f"{state.base_path.rstrip('/')}/{stable}" if state and stable is not None else None


def version_labels(model_name: str, cluster: TFServingCluster | None = None) -> dict[str, int]:
    state = (cluster or cluster_for(model_name)).state()
    return {label: int(version) for label, version in (state.labels if state else {}).items()}
