"""The model contract: load a user's Keras model builder, check it, build it.

    build(hp: keras_tuner.HyperParameters, spec: trainer.sdk.FeatureSpec, task: str) -> keras.Model

(a model imports from the trainer only the model SDK, `trainer.sdk`)

named `package.module:callable` (the `--model` flag; the built-in model is
tune_contract.enums.DEFAULT_MODEL) and found in the models folder: include/models in the
repository, /opt/models in the trainer image (the folder beside the trainer package in both).

The name comes from a run's conf: it must be dotted identifiers (tune_contract.models.parse)
and its top-level package must be a file of the models folder, checked before anything is
imported, so a run cannot import an arbitrary installed module. Every failure is a BadInput
naming the callable, one line.

The hyperparameters the builder declares are the search space. They are collected as Keras
Tuner does (`Tuner._populate_initial_space`): build, and build again with the values that
turn on each conditional scope never active yet, until every scope has been active once.
"""
from __future__ import annotations

import copy
import importlib
import importlib.util
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tune_contract import models as model_names

from trainer.errors import BadInput
from trainer.sdk import FeatureSpec, heads

# include/trainer/trainer/user_model.py -> include/models; /opt/trainer/trainer/… -> /opt/models
MODELS_DIR = Path(__file__).resolve().parents[2] / model_names.FOLDER
PARAMETERS = ("hp", "spec", "task")
DEFAULT_BATCH_SIZE = 128  # per replica, when the model declares no `batch_size`
MAX_BUILDS = 64  # builds to activate every conditional scope; more means scopes that never settle


def task_of(spec: FeatureSpec) -> str:
    """The run's task: the feature spec records it (prepare); regression before it did."""
    return getattr(spec, "task", None) or "regression"


@dataclass(frozen=True)
class UserModel:
    name: str
    builder: Callable[..., Any]

    # -- the search space ----------------------------------------------------------------------

    def declared_space(self, spec: FeatureSpec, task: str | None = None):
        """The Keras Tuner HyperParameters the builder declares, conditional ones included.
        Each build is checked (a keras.Model whose inputs are the spec's features); a builder
        declaring nothing is refused (there would be nothing to tune)."""
        import keras
        import keras_tuner as kt

        task = task or task_of(spec)
        space = kt.HyperParameters()
        hp = space.copy()
        never_active: list = []
        once_active: list = []
        for _ in range(MAX_BUILDS):
            keras.backend.clear_session()
            self._build_checked(hp, spec, task)
            space.merge([h for h in hp.space if not space._exists(h.name, h.conditions)])
            for conditions in hp.active_scopes:
                if conditions not in once_active:
                    once_active.append(copy.deepcopy(conditions))
                if conditions in never_active:
                    never_active.remove(conditions)
            for conditions in hp.inactive_scopes:
                if conditions not in once_active and conditions not in never_active:
                    never_active.append(copy.deepcopy(conditions))
            if not never_active:
                break
            hp = space.copy()
            for condition in never_active[0]:  # turn the first inactive scope on
                hp.values[condition.name] = condition.values[0]
            hp.ensure_active_values()
        else:
            raise BadInput("--model", f"{self.name}: its conditional scopes did not settle after {MAX_BUILDS} builds")
        keras.backend.clear_session()
        if not space.space:
            raise BadInput("--model", f"{self.name} declares no hyperparameter (hp.Int/Float/Choice/Boolean): "
                                      "there is nothing to tune")
        return space

    # -- one model -----------------------------------------------------------------------------

    def hyperparameters(self, declared, values: Mapping[str, Any] | None = None):
        """A HyperParameters holding `declared` with `values` (a trial's) in place of the defaults."""
        hp = declared.copy()
        hp.values.update(dict(values or {}))
        hp.ensure_active_values()
        return hp

    def build(self, hp, spec: FeatureSpec, task: str | None = None, strategy=None):
        """The compiled keras.Model for the values of `hp`, built and compiled under
        `strategy` (MirroredStrategy needs the variables created in its scope)."""
        import contextlib

        task = task or task_of(spec)
        with strategy.scope() if strategy is not None else contextlib.nullcontext():
            net = self._build_checked(hp, spec, task)
            if getattr(net, "optimizer", None) is None:  # returned uncompiled: the task's loss and metrics
                learning_rate = value(hp, "learning_rate", heads.DEFAULT_LEARNING_RATE)
                heads.compile_for_task(net, task, learning_rate)
        return net

    def _build_checked(self, hp, spec: FeatureSpec, task: str):
        import keras

        try:
            net = self.builder(hp, spec, task)
        except BadInput:
            raise
        except Exception as exc:
            raise BadInput("--model", f"{self.name} failed to build: {one_line(exc)}") from None
        if not isinstance(net, keras.Model):
            raise BadInput("--model", f"{self.name} must return a keras.Model, returned {type(net).__name__}")
        check_inputs(self.name, net, spec)
        return net


def value(hp, name: str, default: Any) -> Any:
    """The value of hyperparameter `name` when the model declares it (and it is active)."""
    got = hp.values.get(name) if hp is not None else None
    return default if got is None else got


def batch_size(hp) -> int:
    """The per-replica batch size: the model's `batch_size` hyperparameter, else the default."""
    return int(value(hp, "batch_size", DEFAULT_BATCH_SIZE))


def check_inputs(name: str, net, spec: FeatureSpec) -> None:
    """The model's inputs must be exactly one per feature, named by the spec's Keras key."""
    expected = {spec.keras_key(f) for f in spec.feature_names}
    got = [getattr(t, "name", None) for t in (net.inputs or [])]
    missing, extra = sorted(expected - set(got)), sorted(set(got) - expected, key=str)
    if missing or extra or len(got) != len(set(got)):
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + \
                ([f"not features {', '.join(map(str, extra))}"] if extra else [])
        raise BadInput("--model", f"{name}: its inputs must be one keras.Input per feature named "
                                  f"{', '.join(sorted(expected))}; {'; '.join(parts) or 'some are repeated'}")


def load(name: str, field: str = "--model", models_dir: Path | None = None) -> UserModel:
    """Import and check the builder `name` (module:callable) from the models folder."""
    module, attribute = model_names.parse(name, field)
    folder = Path(models_dir or MODELS_DIR)
    top = module.split(".")[0]
    if not any(Path(p).is_file() for p in model_names.module_files(module, str(folder))):
        raise BadInput(field, f"{name}: no module {module} in the models folder {folder}")
    found = importlib.util.find_spec(top)
    origin = Path(found.origin).resolve() if found is not None and found.origin else None
    if origin is None or folder.resolve() not in origin.parents:
        raise BadInput(field, f"{name}: {top} does not resolve to the models folder {folder} "
                              f"(it is {origin or 'not importable'}; is the folder on the path, and the name unique?)")
    try:
        loaded = importlib.import_module(module)
    except Exception as exc:
        raise BadInput(field, f"{name}: cannot import {module}: {one_line(exc)}") from None
    builder = getattr(loaded, attribute, None)
    if builder is None:
        raise BadInput(field, f"{name}: {module} has no attribute {attribute}")
    if not callable(builder):
        raise BadInput(field, f"{name} is not callable (it is a {type(builder).__name__})")
    try:
        signature = inspect.signature(builder)
        signature.bind(*PARAMETERS)
    except (TypeError, ValueError):
        shown = f"{attribute}{signature}" if "signature" in locals() else attribute
        raise BadInput(field, f"{name} must take (hp, spec, task); it is {shown}") from None
    return UserModel(name, builder)


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
