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
import json
from typing import Any

import numpy as np
import tensorflow as tf
from kserve.errors import InvalidInput

DEFAULT_SIGNATURE = "serving_default"  # where TF Serving sends a request without "signature_name"


class BadRequest(InvalidInput):
    """The request does not fit the signature: HTTP 400 {"error": ...}, as TF Serving answers.

    Messages are TF Serving's own (tensorflow_serving/util/json_tensor.cc and
    servables/tensorflow/predict_util.cc), so a client sees the same error locally.
    """


class ServingSignature:
    """One signature of a loaded SavedModel, with its named inputs and outputs.

    Input names are the SignatureDef's keys, which TF Serving matches requests against. A
    restored signature function takes exactly those as keywords (`_arg_keywords`, in the order
    of its flat inputs); `structured_input_signature` would show tf.function's Python
    parameter names instead (`Solar_R` for the key `Solar.R`).
    """

    def __init__(self, name: str, function):
        self.name = name
        self.function = function
        keywords = getattr(function, "_arg_keywords", None)
        if keywords:
            self.inputs = {key: tf.TensorSpec(t.shape, t.dtype, name=key)
                           for key, t in zip(keywords, function.inputs[:len(keywords)])}
        else:  # a function that is not a restored signature: its parameters are its keys
            _, specs = function.structured_input_signature
            self.inputs = dict(specs)
        self.outputs = function.structured_outputs  # {output name: tf.TensorSpec}

    def __call__(self, tensors: dict[str, tf.Tensor]) -> dict[str, np.ndarray]:
        try:
            outputs = self.function(**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as exc:
            raise BadRequest(f"signature '{self.name}': {_first_line(exc)}") from exc
        return {name: tensor.numpy() for name, tensor in outputs.items()}


def predict(signatures: dict[str, ServingSignature], body: Any) -> dict:
    if not isinstance(body, dict):
        raise BadRequest("JSON Value: is not an object: Is not object")
    requested = body.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(requested, str):
        raise BadRequest("'signature_name' key must be a string")
    if requested not in signatures:  # never a guess: TF Serving has no fallback either
        raise BadRequest(f'Serving signature name: "{requested}" not found in signature def')
    signature = signatures[requested]
    if "instances" in body and "inputs" in body:
        raise BadRequest("Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist")
    if "instances" in body:
        values, row_format = _row_values(signature, body["instances"]), True
    elif "inputs" in body:
        values, row_format = _columnar_values(signature, body["inputs"]), False
    else:
        raise BadRequest("Missing 'inputs' or 'instances' key")
    _check_input_count(signature, set(values))
    tensors = {name: _to_tensor(name, signature.inputs[name], raw) for name, raw in values.items()}
    outputs = signature(tensors)
    return {"predictions": _rows(outputs)} if row_format else {"outputs": _columns(outputs)}


def _is_object(value: Any) -> bool:
    """A JSON object naming inputs (a {"b64": ...} object is a value, not a name map)."""
    return isinstance(value, dict) and not _is_b64(value)


def _row_values(signature: ServingSignature, instances: Any) -> dict[str, list]:
    if not isinstance(instances, list):
        raise BadRequest("Excepting 'instances' to be an list/array")
    if not instances:
        raise BadRequest("No values in 'instances' array")
    names = sorted(signature.inputs)
    if not isinstance(instances[0], dict) and len(names) > 1:
        raise BadRequest("instances is a plain list, but expecting list of objects as multiple input tensors "
                         "required as per tensorinfo_map")
    if not _is_object(instances[0]):  # each instance is the value of the (first) input
        for index, instance in enumerate(instances):
            if _is_object(instance):
                raise BadRequest(f"Expecting value/list but got object at item {index} of input list")
        return {names[0]: instances}
    columns: dict[str, list] = {}
    for index, instance in enumerate(instances):
        if not _is_object(instance):
            raise BadRequest(f"Expecting object but got list at item {index} of input list")
        for name, value in instance.items():
            if name not in signature.inputs:
                raise BadRequest(f"Failed to process element: {index} key: {name} of 'instances' list. "
                                 f"Error: INVALID_ARGUMENT: JSON object: does not have named input: {name}")
            columns.setdefault(name, []).append(value)
        if set(instance) != set(names):
            raise BadRequest(f"Failed to process element: {index} of 'instances' list. JSON object: "
                             f"{json.dumps(instance, separators=(',', ':'))} must only have keys: {','.join(names)}")
    return columns


def _columnar_values(signature: ServingSignature, inputs: Any) -> dict[str, Any]:
    names = sorted(signature.inputs)
    if not _is_object(inputs):
        if len(names) > 1:
            raise BadRequest("inputs is a plain value/list, but expecting an object as multiple input tensors "
                             "required as per tensorinfo_map")
        return {names[0]: inputs}
    for name in names:  # keys the signature does not have are ignored, as TF Serving does
        if name not in inputs:
            raise BadRequest(f"Missing named input: {name} in 'inputs' object.")
    return {name: inputs[name] for name in names}


def _check_input_count(signature: ServingSignature, sent: set[str]) -> None:
    expected = set(signature.inputs)
    if sent != expected:
        raise BadRequest(
            f"input size does not match signature: {len(sent)}!={len(expected)} len({{{','.join(sorted(sent))}}}) "
            f"!= len({{{','.join(sorted(expected))}}}). Sent extra: {{{','.join(sorted(sent - expected))}}}. "
            f"Missing but required: {{{','.join(sorted(expected - sent))}}}.")


def _to_tensor(name: str, spec: tf.TensorSpec, value: Any) -> tf.Tensor:
    """The JSON value as a tensor of the signature's dtype, batch first, of the signature's shape."""
    try:
        tensor = tf.constant(_decode_b64(value), dtype=spec.dtype)
    except (TypeError, ValueError, binascii.Error) as exc:
        raise BadRequest(f"input '{name}': not a {spec.dtype.name} tensor: {_first_line(exc)}") from None
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
