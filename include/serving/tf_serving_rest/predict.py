"""TF Serving's predict API on a SavedModel signature: JSON request -> tensors -> JSON response.

Inputs and outputs are read from the signature itself (structured_input_signature and
structured_outputs), never from a list of feature names. Shapes follow TF Serving's REST
API: row format `{"instances": [...]}` answers `{"predictions": [...]}`, columnar format
`{"inputs": ...}` answers `{"outputs": ...}`; a single named output is given as a bare list,
several as objects. `{"b64": "..."}` stands for a binary string value.
"""
from __future__ import annotations

import base64
import binascii
from typing import Any

import numpy as np
import tensorflow as tf
from kserve.errors import InvalidInput

DEFAULT_SIGNATURE = "serving_default"
# The trainer's raw-feature signature (docs/contracts.md). TF Serving itself would send a
# request without `signature_name` to serving_default, which takes serialized tf.Examples;
# we send named raw features there instead, so {"instances": [{feature: value}]} just works.
RAW_FEATURES_SIGNATURE = "serving_raw"


class BadRequest(InvalidInput):
    """The request does not fit the signature: HTTP 400 {"error": ...}, as TF Serving answers."""


class ServingSignature:
    """One signature of a loaded SavedModel, with its named inputs and outputs."""

    def __init__(self, name: str, function):
        self.name = name
        self.function = function
        _, self.inputs = function.structured_input_signature  # {input name: tf.TensorSpec}
        self.outputs = function.structured_outputs  # {output name: tf.TensorSpec}

    def __call__(self, tensors: dict[str, tf.Tensor]) -> dict[str, np.ndarray]:
        try:
            outputs = self.function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise BadRequest(f"signature '{self.name}': {_first_line(exc)}") from exc
        return {name: tensor.numpy() for name, tensor in outputs.items()}


def predict(signatures: dict[str, ServingSignature], body: Any) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("request body must be a JSON object")
    if ("instances" in body) == ("inputs" in body):
        raise BadRequest("request must have exactly one of 'instances' (row format) or 'inputs' (columnar format)")
    row_format = "instances" in body
    values = _row_values if row_format else _columnar_values
    payload = body["instances"] if row_format else body["inputs"]
    signature = _select_signature(signatures, body.get("signature_name"), _named_inputs(payload, row_format))
    tensors = {name: _to_tensor(name, spec, raw) for name, (spec, raw) in values(signature, payload).items()}
    outputs = signature(tensors)
    return {"predictions": _rows(outputs)} if row_format else {"outputs": _columns(outputs)}


def _named_inputs(payload: Any, row_format: bool) -> set[str] | None:
    """Input names the request uses, or None when it gives one unnamed input."""
    if row_format:
        if isinstance(payload, list) and payload and all(isinstance(i, dict) and not _is_b64(i) for i in payload):
            return set().union(*payload)
        return None
    return set(payload) if isinstance(payload, dict) and not _is_b64(payload) else None


def _select_signature(signatures, requested: str | None, names: set[str] | None) -> ServingSignature:
    if requested is None:
        requested = DEFAULT_SIGNATURE
        default = signatures.get(DEFAULT_SIGNATURE)
        if names is not None and RAW_FEATURES_SIGNATURE in signatures and (
                default is None or not names <= set(default.inputs)):
            requested = RAW_FEATURES_SIGNATURE
    if requested not in signatures:
        raise BadRequest(f"Serving signature name: \"{requested}\" not found in signature def "
                           f"(has: {', '.join(sorted(signatures))})")
    return signatures[requested]


def _check_names(signature: ServingSignature, names: set[str]) -> None:
    expected = set(signature.inputs)
    if unknown := names - expected:
        raise BadRequest(f"signature '{signature.name}' has no input(s) {_quoted(unknown)}; "
                           f"its inputs are {_quoted(expected)}")
    if missing := expected - names:
        raise BadRequest(f"signature '{signature.name}' is missing input(s) {_quoted(missing)}")


def _row_values(signature: ServingSignature, instances: Any) -> dict[str, tuple[tf.TensorSpec, list]]:
    if not isinstance(instances, list) or not instances:
        raise BadRequest("'instances' must be a non-empty list")
    names = _named_inputs(instances, row_format=True)
    if names is None:  # one unnamed input: each instance is its value
        (name, spec), = _single_input(signature)
        return {name: (spec, instances)}
    for index, instance in enumerate(instances):
        try:
            _check_names(signature, set(instance))
        except BadRequest as exc:
            raise BadRequest(f"instance {index}: {exc}") from None
    return {name: (spec, [instance[name] for instance in instances]) for name, spec in signature.inputs.items()}


def _columnar_values(signature: ServingSignature, inputs: Any) -> dict[str, tuple[tf.TensorSpec, Any]]:
    if _named_inputs(inputs, row_format=False) is None:
        (name, spec), = _single_input(signature)
        return {name: (spec, inputs)}
    _check_names(signature, set(inputs))
    return {name: (spec, inputs[name]) for name, spec in signature.inputs.items()}


def _single_input(signature: ServingSignature):
    if len(signature.inputs) != 1:
        raise BadRequest(f"signature '{signature.name}' has {len(signature.inputs)} inputs "
                           f"({_quoted(signature.inputs)}): give them by name")
    return list(signature.inputs.items())


def _to_tensor(name: str, spec: tf.TensorSpec, value: Any) -> tf.Tensor:
    """The JSON value as a tensor of the signature's dtype, batch first.

    A trailing dimension of size 1 may be left out ({"size": 1.5} for a [None, 1] input),
    as TF Serving clients commonly do for one-value-per-feature models.
    """
    try:
        tensor = tf.constant(_decode_b64(value), dtype=spec.dtype)
    except (TypeError, ValueError, binascii.Error) as exc:
        raise BadRequest(f"input '{name}': not a {spec.dtype.name} tensor: {_first_line(exc)}") from None
    if not spec.shape.is_compatible_with(tensor.shape) and spec.shape.rank == tensor.shape.rank + 1 \
            and spec.shape[-1] == 1:
        tensor = tf.expand_dims(tensor, -1)
    if not spec.shape.is_compatible_with(tensor.shape):
        raise BadRequest(f"input '{name}': shape {tensor.shape.as_list()} does not match the signature's "
                           f"{spec.shape.as_list()}")
    return tensor


def _decode_b64(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_b64(item) for item in value]
    if _is_b64(value):
        return base64.b64decode(value["b64"], validate=True)
    return value


def _is_b64(value: Any) -> bool:
    return isinstance(value, dict) and set(value) == {"b64"}


def _rows(outputs: dict[str, np.ndarray]) -> list:
    if len(outputs) == 1:
        (name, array), = outputs.items()
        return _json_values(name, array)
    columns = {name: _json_values(name, array) for name, array in outputs.items()}
    batch = len(next(iter(columns.values())))
    return [{name: column[i] for name, column in columns.items()} for i in range(batch)]


def _columns(outputs: dict[str, np.ndarray]) -> Any:
    if len(outputs) == 1:
        (name, array), = outputs.items()
        return _json_values(name, array)
    return {name: _json_values(name, array) for name, array in outputs.items()}


def _json_values(name: str, array: np.ndarray) -> Any:
    if array.dtype != object:  # numbers and booleans
        return array.tolist()
    # DT_STRING: TF Serving base64-encodes outputs whose name ends in `_bytes`.
    encode = (lambda b: {"b64": base64.b64encode(b).decode()}) if name.endswith("_bytes") \
        else (lambda b: b.decode("utf-8", errors="replace"))
    return np.vectorize(encode, otypes=[object])(array).tolist() if array.size else array.tolist()


def _quoted(names) -> str:
    return ", ".join(f"'{n}'" for n in sorted(names))


def _first_line(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
