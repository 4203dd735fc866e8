"""The `model` run parameter: which Keras model builder a run tunes and trains.

A model is named `package.module:callable`, importable from the models folder
(include/models locally, /opt/models in the trainer image). The name comes from a run's
conf, so it is checked here, on both sides, before anything imports it: dotted Python
identifiers only, never a path (`..`, `/`, `~` cannot pass), and short.

Only the trainer imports the module (trainer.user_model); the Airflow side never runs
user code, at most it looks whether the module's file is in a models folder it has.
"""
from __future__ import annotations

import keyword
import os
import re
from typing import Final

from tune_contract.enums import DEFAULT_MODEL
from tune_contract.errors import BadInput

MAX_LENGTH: Final = 200
_IDENTIFIER = r"[A-Za-z_][A-Za-z0-9_]*"
# the name's form, as a regular expression a JSON schema (the trigger form's Param) can say too
PATTERN: Final = rf"^{_IDENTIFIER}(?:\.{_IDENTIFIER})*:{_IDENTIFIER}$"
_NAME = re.compile(PATTERN)
# the models folder's name: beside the trainer package, include/models in the repository and
# /opt/models in the trainer image
FOLDER: Final = "models"
FORM: Final = ("package.module:callable (dotted Python identifiers, "
               "e.g. tune_serve_models.wide_and_deep:build)")


def parse(name: object, field: str = "model") -> tuple[str, str]:
    """(module, callable) of a model name; BadInput naming `field` when it is not one."""
    if not isinstance(name, str) or not name:
        raise BadInput(field, f"must be {FORM}, got {name!r}")
    if len(name) > MAX_LENGTH or not _NAME.match(name):
        raise BadInput(field, f"{name[:MAX_LENGTH]!r} is not {FORM}")
    module, attribute = name.split(":")
    reserved = [part for part in (*module.split("."), attribute) if keyword.iskeyword(part)]
    if reserved:
        raise BadInput(field, f"{name!r}: {reserved[0]!r} is a Python keyword, not a usable name")
    return module, attribute


def is_default(name: str | None) -> bool:
    """The built-in model (a name left out, or empty, means it)."""
    return name in (None, "", DEFAULT_MODEL)


def name_or_default(name: str | None) -> str:
    """The model a run or a step tunes: `name`, or the built-in one when it is left out."""
    return name or DEFAULT_MODEL


def module_files(module: str, folder: str) -> tuple[str, str]:
    """Where `module` would be in the models folder `folder`: a .py file or a package."""
    base = os.path.join(folder, *module.split("."))
    return f"{base}.py", os.path.join(base, "__init__.py")
