"""One version of the model: a SavedModel served as a kserve.Model (KServe V1 protocol)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import tensorflow as tf
from kserve import Model
from tensorflow.core.framework import types_pb2

from .predict import BadRequest, ServingSignature, predict

PREDICT_METHOD = "tensorflow/serving/predict"


class SavedModelVersion(Model):
    def __init__(self, model_name: str, version: int, path: Path):
        super().__init__(model_name)
        self.version = version
        self.path = Path(path)
        self.signatures: dict[str, ServingSignature] = {}
        self._saved_model = None

    def load(self) -> bool:
        # Idempotent: KServe's dataplane calls load() on a model it finds not ready, which
        # happens when a request races with this version being unloaded (ready=False).
        if self._saved_model is None:
            saved_model = tf.saved_model.load(str(self.path))
            self.signatures = {name: ServingSignature(name, fn) for name, fn in saved_model.signatures.items()}
            self._saved_model = saved_model  # keeps the variables the signatures use alive
        self.ready = True
        return self.ready

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        # KServe passes bodies that aren't declared as JSON through as bytes; TF Serving
        # parses every body as JSON whatever its content type (curl -d sends a form type).
        if isinstance(payload, (bytes, bytearray)):
            try:
                return orjson.loads(payload)
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"JSON parse error: {exc}") from None
        return payload

    def predict(self, payload: Any, headers: dict[str, str] | None = None) -> dict:
        return predict(self.signatures, payload)

    def metadata(self) -> dict:
        """TF Serving's GetModelMetadata response, signature_def part."""
        return {
            "model_spec": {"name": self.name, "signature_name": "", "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": {
                name: {
                    "inputs": {key: _tensor_info(f"{name}_{key}:0", spec) for key, spec in sig.inputs.items()},
                    "outputs": {key: _tensor_info(f"StatefulPartitionedCall:{i}", spec)
                                for i, (key, spec) in enumerate(sorted(sig.outputs.items()))},
                    "method_name": PREDICT_METHOD,
                }
                for name, sig in self.signatures.items()
            }}},
        }


def _tensor_info(tensor_name: str, spec: tf.TensorSpec) -> dict:
    shape = spec.shape
    dims = [] if shape.rank is None else [{"size": str(-1 if d is None else d), "name": ""} for d in shape.as_list()]
    return {
        "dtype": types_pb2.DataType.Name(spec.dtype.as_datatype_enum),
        "tensor_shape": {"dim": dims, "unknown_rank": shape.rank is None},
        "name": tensor_name,
    }
