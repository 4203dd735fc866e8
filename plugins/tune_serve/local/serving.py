"""Local serving backend: versions under `{serving_root}`, served by the local TF Serving stand-in.

A deployment: copy the SavedModel in as the next version → the server loads it in the
background → wait until that version is AVAILABLE → label it `canary` and smoke-test a
prediction on that very version → label it `stable`, which moves the default route to it.
If it fails to load or the smoke test fails, the previous stable version keeps serving and
the new version stays on disk, labelled nowhere.
"""
from __future__ import annotations

import shutil

from tune_contract.enums import CANARY, STABLE
from tune_serve import config
from tune_serve.local import server as local_server
from tune_serve.local.model_store import ModelStore
from tune_serve.serving.errors import ModelRejected
from tune_serve.serving.rest_client import TFServingREST

DEFAULT_TIMEOUT_SECONDS = "180"  # server start (imports TensorFlow), then loading one version


def deploy(model_path: str, model_name: str, instance: dict) -> dict:
    store = ModelStore(config.serving_root(), model_name)
    timeout = float(config.setting("serving_timeout", DEFAULT_TIMEOUT_SECONDS))
    staged = store.stage(model_path)  # the slow copy, outside the lock
    try:
        # One deployment of a model at a time: versions are numbered in lock order, and
        # labels are never rewritten by two deployments at once.
        with store.lock(timeout=4 * timeout):
            url = local_server.ensure_running(store, timeout)
            with TFServingREST(url, model_name) as server:
                labels = store.labels()
                previous = labels.get(STABLE)
                if previous is None:  # versions put there by hand: the server serves the highest
                    previous = max(server.available_versions(), default=None)
                version = store.publish(staged)
                prediction = _roll_out(store, server, version, instance, timeout)
                return {"model_name": model_name, "version": version, "url": server.predict_url(),
                        "previous_version": previous, "prediction": prediction}
    finally:
        shutil.rmtree(staged, ignore_errors=True)  # already gone once published


def _roll_out(store: ModelStore, server: TFServingREST, version: int, instance: dict, timeout: float):
    settled = {label: v for label, v in store.labels().items() if label != CANARY}
    try:
        server.wait_available(version, timeout)
        store.set_labels({**settled, CANARY: version})
        prediction = server.smoke_test(version, instance)
    except BaseException as exc:
        store.set_labels(settled)  # the version stays on disk, labelled nowhere
        if isinstance(exc, ModelRejected):
            serving = settled.get(STABLE)
            still = f"version {serving} keeps serving" if serving is not None else "no stable version to keep serving"
            raise ModelRejected(f"{exc}; {still} (server log: {local_server.log_path(store)})") from None
        raise
    store.set_labels({**settled, STABLE: version})
    server.wait_label(STABLE, version, timeout)
    return prediction


def current_model(model_name: str) -> str | None:
    path = ModelStore(config.serving_root(), model_name).stable_path()
    return str(path) if path else None


def stop_local_server(model_name: str) -> bool:
    """Stop the model's local server (tests, teardown). True if one was running."""
    return local_server.stop(ModelStore(config.serving_root(), model_name))


def stop_all_local_servers() -> list[str]:
    """Stop every local server of this serving root (end-to-end teardown). The models stopped."""
    root = config.serving_root()
    return [name for name in local_server.models_with_pid_files(root) if stop_local_server(name)]
