"""The one small JSON result each step leaves for the orchestrator (the pod's XCom file)."""
from __future__ import annotations

import json
import os

from tune_contract.results import finite

DEFAULT_XCOM_FILE = "/airflow/xcom/return.json"


def write_result(path: str | None, result: dict) -> str:
    path = path or os.environ.get("TRAINER_XCOM_FILE") or DEFAULT_XCOM_FILE
    if "://" in path:  # e.g. the chief's result in shared storage, where no XCom sidecar reads it
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "w") as f:
            f.write(json.dumps(finite(result), sort_keys=True))
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(finite(result), f, sort_keys=True)
    os.replace(tmp, path)  # a reader never sees half a result
    return path
