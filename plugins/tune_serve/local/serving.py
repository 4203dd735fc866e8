"""Local serving backend: versions under `{serving_root}`, served by the local TF Serving stand-in.

A deployment: copy the SavedModel next to the versions (outside the lock) → under the
model's lock, make sure the model is in the server's config, rename the copy into place as
the next version (one atomic step) → the running server loads it (it polls the serving root,
as TF Serving polls its file system) → wait until that version is AVAILABLE → label it
`canary` and smoke-test a prediction on that very version → label it `stable`, which moves
the default route to it. If it fails to load or the smoke test fails, the previous stable
version keeps serving and the new version is moved aside to `.rejected-{version}` (kept for
inspection, never served); a model whose first version is rejected stays absent (404).

The decision, the provenance, the labels and the result are the ones both platforms share
(`tune_serve.serving.publisher`); the versions' store is `model_store.ModelStore`.
"""
from __future__ import annotations

import shutil
from typing import Any

from tune_contract.enums import STABLE
from tune_serve import config
from tune_serve.local import server as local_server
from tune_serve.local.model_store import ModelStore
from tune_serve.serving import deploy_decision, provenance
from tune_serve.serving.deploy_decision import DeployResult
from tune_serve.serving.errors import ModelRejected
from tune_serve.serving.publisher import Publisher, canary, promoted, settled
from tune_serve.serving.rest_client import TFServingREST

DEFAULT_TIMEOUT_SECONDS = "180"  # server start (imports TensorFlow), then loading one version


def deploy(model_path: str, model_name: str, instance: dict[str, Any],
           candidate: dict[str, Any] | None = None) -> DeployResult:
    store = ModelStore(config.serving_root(), model_name)
    timeout = float(config.setting("serving_timeout", DEFAULT_TIMEOUT_SECONDS))
    publisher = Publisher(model_name, store, model_path, provenance.fingerprint(model_path), candidate)
    staged = store.stage(model_path)  # the slow copy, outside the lock
    try:
        # One deployment of a model at a time: versions are numbered in lock order, labels are
        # never rewritten by two deployments at once, and what serves is read here, not earlier.
        with store.lock(timeout=4 * timeout):
            url = local_server.ensure_running(store, timeout)
            with TFServingREST(url, model_name) as server:
                previous = store.labels().get(STABLE)
                serving_path = store.stable_path()
                held = publisher.held(str(serving_path) if serving_path else None, previous,
                                      server.predict_url())
                if held is not None:
                    return held
                if previous is None and not store.configured():  # versions put there by hand
                    previous = max(server.available_versions(), default=None)
                store.configure()  # listed in the server's config: served by its stable label only
                version = publisher.publish(staged)
                prediction = _roll_out(store, server, version, instance, timeout)
                return deploy_decision.published(model_name, version, previous, server.predict_url(),
                                                 prediction)
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # already gone once published


def _roll_out(store: ModelStore, server: TFServingREST, version: int, instance: dict[str, Any],
              timeout: float) -> Any:
    labels = store.labels()
    try:
        server.wait_available(version, timeout)
        store.set_labels(canary(labels, version))
        prediction = server.smoke_test(version, instance)
    except BaseException as exc:
        store.set_labels(settled(labels))
        if isinstance(exc, ModelRejected):
            aside = store.reject(version)  # the server unloads it: it never answers again
            serving = labels.get(STABLE)
            still = (f"version {serving} keeps serving" if serving is not None
                     else "no stable version to keep serving")
            raise ModelRejected(f"{exc}; {still}; the rejected version is kept at {aside} "
                                f"(server log: {local_server.log_path(store.root)})") from None
        raise
    store.set_labels(promoted(labels, version))
    server.wait_label(STABLE, version, timeout)
    return prediction


def current_model(model_name: str) -> str | None:
    path = ModelStore(config.serving_root(), model_name).stable_path()
    return str(path) if path else None


def version_labels(model_name: str) -> dict[str, int]:
    return ModelStore(config.serving_root(), model_name).labels()


def stop_all_local_servers() -> bool:
    """Stop the model server of this serving root (`make stop`, test teardown). True if one ran."""
    return local_server.stop(config.serving_root())
