"""Pod-task backends. Each module exposes the same functions (see docs/contracts.md)."""
from __future__ import annotations

import importlib
from types import ModuleType

from tune_serve import config

_MODULES = {"local": "tune_serve.local.backend", "kubernetes": "tune_serve.kubernetes.backend",
            "gke": "tune_serve.kubernetes.backend"}


def current() -> ModuleType:
    """The backend module chosen by configuration (never by editing the DAG)."""
    return importlib.import_module(_MODULES[config.backend()])
