"""Serving deployment, for whichever backend configuration picks (docs/contracts.md).

    deploy(model_path, model_name, instance) -> {"model_name", "version", "url",
                                                 "previous_version", "prediction"}
    current_model(model_name) -> path of the SavedModel serving now, or None

Each backend is a module of this package exposing those two functions: `local` (the local
TF Serving stand-in) and `kubernetes` (a TF Serving Deployment; also used for `gke`).
Never imports TensorFlow.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from tune_serve import config

_MODULES = {"local": "tune_serve.local.serving", "kubernetes": "tune_serve.kubernetes.serving",
            "gke": "tune_serve.kubernetes.serving"}


def backend_module() -> ModuleType:
    name = _MODULES[config.backend()]
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        raise NotImplementedError(f"serving backend {config.backend()!r}: module {name} is not written yet") from None


def deploy(model_path: str, model_name: str, instance: dict) -> dict:
    """Serve `model_path` as the next version of `model_name`, once a prediction of `instance`
    (a raw feature dict) succeeds on it; the previous version keeps serving otherwise."""
    return backend_module().deploy(model_path, model_name, instance)


def current_model(model_name: str) -> str | None:
    """The SavedModel the stable version serves (the evaluation baseline), or None."""
    return backend_module().current_model(model_name)
