"""The feature spec: which columns feed the model, their types, statistics and vocabularies.

`prepare` writes it next to the data (`{run_root}/data/feature_spec.json`); the model,
the input pipeline, the exported signatures and the evaluation all read it, so they can
never disagree about a feature. Two forms exist:

- `FeatureSpec`: complete (stats for every numeric feature, a vocabulary for every
  categorical one) — what `prepare` writes and every later step loads.
- `DeclaredSpec`: what a user may pass to `prepare --feature-spec` — column types, and
  optionally vocabularies or stats; `prepare` fills in the rest from the train split.

Both are validated when built (`from_dict`); a problem raises `BadInput` naming the key at
fault. Part of the model SDK (`trainer.sdk`): no file I/O here (reading and writing a spec on
storage is the trainer's, `trainer.featurespec.load`/`save`), nothing of the trainer imported.
"""
from __future__ import annotations

import json
import keyword
import math
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from tune_contract.enums import CLASSIFICATION_TASKS, TASKS
from tune_contract.errors import BadInput

STAT_KEYS = ("mean", "variance", "min", "max")
TOP_LEVEL_KEYS = ("label", "numeric", "categorical", "label_stats", "task", "label_vocabulary")

# Column names are kept as CSV files have them (`Solar.R`, `a-b`): they are the keys of the
# tf.Examples, the feature spec, the report and the serving signature's inputs. Two derived
# keys exist because not every string can be everything:
# - a Keras input key (`keras_key`): a Python identifier, as tf.function parameter names must
#   be (TF would otherwise rename `a-b` to `a_b` itself, silently);
# - a signature key (`signature_key`): the name itself when it is a valid TF op name (letters,
#   digits, '.', '_', '-'; the TensorSpec name becomes the SignatureDef key), else the Keras key.
# Both are deterministic given the spec's names; `name_mapping()` lists the ones that differ.
_OP_NAME = re.compile(r"^[A-Za-z0-9.][A-Za-z0-9_.\-]*$")
_MAX_NAME = 200
NAME_RULE = f"must be a non-empty column name of at most {_MAX_NAME} characters without control characters"


def check_name(field_name: str, name: Any) -> str:
    if not isinstance(name, str) or not name or len(name) > _MAX_NAME or name != name.strip() \
            or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise BadInput(field_name, f"{name!r} is not a usable feature name: {NAME_RULE} "
                                   "(and no leading or trailing spaces)")
    return name


def _identifier(name: str) -> str:
    key = re.sub(r"[^A-Za-z0-9_]", "_", name)
    if not key[0].isalpha():
        key = f"f_{key}"
    return f"{key}_" if keyword.iskeyword(key) else key


def _short_hash(name: str) -> str:
    import hashlib

    return hashlib.sha256(name.encode("utf-8")).hexdigest()[:6]


def derived_keys(names: list[str], valid, derive) -> dict[str, str]:
    """{name: key}: the name itself when `valid(name)`, else `derive(name)`; a key taken by an
    earlier name gets a short hash of its own name appended (the same names always map alike)."""
    keys: dict[str, str] = {}
    taken = {n for n in names if valid(n)}
    for name in names:
        if valid(name):
            keys[name] = name
            continue
        key = derive(name)
        if key in taken or key in keys.values():
            key = f"{key}_{_short_hash(name)}"
        keys[name] = key
        taken.add(key)
    return keys


@dataclass
class FeatureSpec:
    label: str
    numeric: dict[str, dict] = field(default_factory=dict)  # name -> {mean, variance, min, max}
    categorical: dict[str, list[str]] = field(default_factory=dict)  # name -> vocabulary
    # mean/variance/min/max of the label on the train split; the model de-normalises its
    # output with it so a regression on e.g. prices trains in a few epochs.
    label_stats: dict | None = None
    # what the model predicts (tune_contract.enums.TASKS); `prepare` infers or checks it
    task: str = "regression"
    # a classifier's class names, sorted; the tf.Example label is the index of its class here
    label_vocabulary: list[str] | None = None

    def __post_init__(self):
        self._validate()

    @property
    def is_classification(self) -> bool:
        return self.task in CLASSIFICATION_TASKS

    @property
    def num_classes(self) -> int:
        return len(self.label_vocabulary or ())

    # -- views -------------------------------------------------------------------

    @property
    def feature_names(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    def is_categorical(self, name: str) -> bool:
        return name in self.categorical

    def parse_spec(self, include_label: bool = False) -> dict:
        """tf.io.parse_example spec: every feature (and the label) is a [1]-shaped FixedLenFeature."""
        import tensorflow as tf

        spec = {name: tf.io.FixedLenFeature([1], tf.float32) for name in self.numeric}
        spec.update({name: tf.io.FixedLenFeature([1], tf.string) for name in self.categorical})
        if include_label:  # a class index for a classifier, the value itself for a regression
            spec[self.label] = tf.io.FixedLenFeature([1], tf.int64 if self.is_classification else tf.float32)
        return spec

    def _all_names(self) -> list[str]:
        return [*self.feature_names, self.label]

    def keras_key(self, name: str) -> str:
        """The Keras input (and layer) name of a feature or the label: a Python identifier."""
        return derived_keys(self._all_names(), lambda n: n.isidentifier() and not keyword.iskeyword(n) and n.isascii(),
                            _identifier)[name]

    def signature_key(self, name: str) -> str:
        """The serving signature's key of a feature (input) or the label (output)."""
        # a Python keyword (`class`) is a valid op name, but TF's signature canonicalisation makes
        # every key an inspect.Parameter, which refuses keywords
        return derived_keys(self._all_names(), lambda n: bool(_OP_NAME.match(n)) and not keyword.iskeyword(n),
                            _identifier)[name]

    def name_mapping(self) -> dict[str, dict]:
        """{original name: {"keras_input", "signature_key"}} for every name a key differs from."""
        return {name: {"keras_input": self.keras_key(name), "signature_key": self.signature_key(name)}
                for name in self._all_names()
                if (self.keras_key(name), self.signature_key(name)) != (name, name)}

    def to_keras_inputs(self, features: dict) -> dict:
        """Tensors keyed by original feature name -> keyed by Keras input name."""
        return {self.keras_key(name): features[name] for name in self.feature_names}

    def serving_signature(self) -> dict:
        """TensorSpecs of `serving_default`: one [None] tensor per feature (one scalar per
        instance, as REST clients send), keyed and named by signature key."""
        import tensorflow as tf

        specs = {}
        for name in self.feature_names:
            key = self.signature_key(name)
            specs[key] = tf.TensorSpec([None], tf.string if self.is_categorical(name) else tf.float32, name=key)
        return specs

    # -- (de)serialisation ---------------------------------------------------------

    def to_dict(self) -> dict:
        d = {"label": self.label, "numeric": self.numeric, "categorical": self.categorical}
        if self.label_stats is not None:
            d["label_stats"] = self.label_stats
        d["task"] = self.task
        if self.label_vocabulary is not None:
            d["label_vocabulary"] = self.label_vocabulary
        return json.loads(json.dumps(d))  # a deep copy of plain JSON types

    @classmethod
    def from_dict(cls, d: Any, source: str = "feature_spec") -> "FeatureSpec":
        _check_mapping(source, d)
        _check_keys(source, d, TOP_LEVEL_KEYS)
        for key in ("label", "numeric", "categorical"):
            if key not in d:
                raise BadInput(f"{source}.{key}", "missing")
        numeric = _check_mapping(f"{source}.numeric", d["numeric"])
        categorical = _check_mapping(f"{source}.categorical", d["categorical"])
        label_stats = d.get("label_stats")
        vocabulary = d.get("label_vocabulary")
        return cls(
            label=d["label"],
            numeric={name: _check_stats(f"{source}.numeric.{name}", stats) for name, stats in numeric.items()},
            categorical={name: _check_vocab(f"{source}.categorical.{name}", v) for name, v in categorical.items()},
            label_stats=None if label_stats is None else _check_stats(f"{source}.label_stats", label_stats),
            # a spec written before classification existed is a regression's
            task=d.get("task", "regression"),
            label_vocabulary=None if vocabulary is None else _check_vocab(f"{source}.label_vocabulary", vocabulary),
        )

    # -- validation ----------------------------------------------------------------

    def _validate(self) -> None:
        check_name("feature_spec.label", self.label)
        for kind in ("numeric", "categorical"):
            for name in getattr(self, kind):
                check_name(f"feature_spec.{kind}", name)
        both = sorted(set(self.numeric) & set(self.categorical))
        if both:
            raise BadInput(f"feature_spec.{both[0]}", "declared both numeric and categorical")
        if self.label in self.numeric or self.label in self.categorical:
            raise BadInput(f"feature_spec.{self.label}", "the label cannot also be a feature")
        if not self.feature_names:
            raise BadInput("feature_spec", "no features: declare at least one numeric or categorical column")
        if self.task not in TASKS:
            raise BadInput("feature_spec.task", f"unknown task {self.task!r}; allowed: {', '.join(TASKS)}")
        if self.is_classification:
            vocab = self.label_vocabulary or []
            need = 2 if self.task == "binary" else 3
            if (self.task == "binary" and len(vocab) != 2) or len(vocab) < need:
                raise BadInput("feature_spec.label_vocabulary",
                               f"a {self.task} task needs {'exactly 2' if self.task == 'binary' else 'at least 3'} "
                               f"classes, got {len(vocab)}")
        elif self.label_vocabulary is not None:
            raise BadInput("feature_spec.label_vocabulary", "only a classification task has a label vocabulary")


@dataclass
class DeclaredSpec:
    """A user's partial spec for `prepare --feature-spec`.

    Accepted shapes (JSON or YAML), every key optional::

        {"label": "price",
         "numeric": ["carat", "depth"]            # or {"carat": {stats} | null, ...}
         "categorical": ["cut"]                   # or {"cut": ["Fair", "Good"] | null, ...}}

    Columns without a vocabulary/stats get them from the train split.
    """

    label: str | None = None
    numeric: dict[str, dict | None] = field(default_factory=dict)
    categorical: dict[str, list[str] | None] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        return [*self.numeric, *self.categorical]

    @classmethod
    def from_dict(cls, d: Any, source: str = "--feature-spec") -> "DeclaredSpec":
        _check_mapping(source, d)
        _check_keys(source, d, ("label", "numeric", "categorical"))
        label = d.get("label")
        if label is not None:
            check_name(f"{source}.label", label)
        numeric = _names_or_mapping(f"{source}.numeric", d.get("numeric"))
        categorical = _names_or_mapping(f"{source}.categorical", d.get("categorical"))
        numeric = {n: None if s is None else _check_stats(f"{source}.numeric.{n}", s) for n, s in numeric.items()}
        categorical = {
            n: None if v is None else _check_vocab(f"{source}.categorical.{n}", v) for n, v in categorical.items()
        }
        both = sorted(set(numeric) & set(categorical))
        if both:
            raise BadInput(f"{source}.{both[0]}", "declared both numeric and categorical")
        if label is not None and label in (*numeric, *categorical):
            raise BadInput(f"{source}.{label}", "the label cannot also be a feature")
        return cls(label=label, numeric=numeric, categorical=categorical)


# -- helpers -------------------------------------------------------------------------


def _check_mapping(field_name: str, value: Any) -> Mapping:
    if not isinstance(value, Mapping):
        raise BadInput(field_name, f"must be a mapping, got {type(value).__name__}")
    return value


def _check_keys(field_name: str, d: Mapping, allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(d) - set(allowed))
    if unknown:
        raise BadInput(f"{field_name}.{unknown[0]}", f"unknown key; allowed: {', '.join(allowed)}")


def _names_or_mapping(field_name: str, value: Any) -> dict:
    if value is None:
        return {}
    if isinstance(value, list):
        for name in value:
            check_name(field_name, name)
        if len(set(value)) != len(value):
            raise BadInput(field_name, "lists a column twice")
        return {name: None for name in value}
    _check_mapping(field_name, value)
    for name in value:
        check_name(field_name, name)
    return dict(value)


def _check_stats(field_name: str, stats: Any) -> dict:
    _check_mapping(field_name, stats)
    _check_keys(field_name, stats, STAT_KEYS)
    out = {}
    for key in STAT_KEYS:
        if key not in stats:
            raise BadInput(f"{field_name}.{key}", f"missing; numeric stats need {', '.join(STAT_KEYS)}")
        value = stats[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadInput(f"{field_name}.{key}", f"must be a finite number, got {value!r}")
        out[key] = float(value)
    if out["variance"] < 0:
        raise BadInput(f"{field_name}.variance", f"must be >= 0, got {out['variance']}")
    if out["min"] > out["max"]:
        raise BadInput(f"{field_name}.min", f"greater than max ({out['min']} > {out['max']})")
    return out


def _check_vocab(field_name: str, vocab: Any) -> list[str]:
    if not isinstance(vocab, list) or not vocab:
        raise BadInput(field_name, "vocabulary must be a non-empty list of strings")
    bad = [v for v in vocab if not isinstance(v, str) or v == ""]
    if bad:
        raise BadInput(field_name, f"vocabulary entries must be non-empty strings, got {bad[0]!r}")
    if len(set(vocab)) != len(vocab):
        dup = next(v for v in vocab if vocab.count(v) > 1)
        raise BadInput(field_name, f"vocabulary lists {dup!r} twice")
    return list(vocab)
