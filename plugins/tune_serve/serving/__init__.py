"""Serving deployment, for whichever backend configuration picks (docs/contracts.md).

    deploy(model_path, model_name, instance, candidate=None)
        -> {"model_name", "action", "reason", "version", "serving_version", "url", "previous_version",
            "prediction"}
    current_model(model_name) -> path of the SavedModel serving now, or None

Each platform implements them in its package: `tune_serve.local.serving` (the local TF
Serving stand-in) and `tune_serve.kubernetes.serving` (a TF Serving Deployment; also used
for `gke`), reached through `tune_serve.backend.current()`. This package holds what both
share: the errors and the REST client. Never imports TensorFlow.
"""
from __future__ import annotations

from typing import Any

from tune_serve import backend


def deploy(model_path: str, model_name: str, instance: dict[str, Any],
           candidate: dict[str, Any] | None = None) -> dict[str, Any]:
    """Serve `model_path` as the next version of `model_name`, once a prediction of `instance`
    (a raw feature dict) succeeds on it; the previous version keeps serving otherwise.
    `candidate` ({run_id, rank, judged_against}): a run's candidate, published only if the
    version its verdict was judged against still serves and it is not a version already
    (tune_serve.serving.deploy_decision); without it, always published."""
    return backend.current().deploy(model_path, model_name, instance, candidate=candidate)


def current_model(model_name: str) -> str | None:
    """The SavedModel the stable version serves (the evaluation baseline), or None."""
    return backend.current().current_model(model_name)
