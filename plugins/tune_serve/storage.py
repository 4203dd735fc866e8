"""A run's storage location as an Airflow ObjectStoragePath: a plain path is a local file,
a URI keeps its scheme; `conn_id` (a Google Cloud connection) is used for gs:// only."""
from __future__ import annotations

from typing import Any


def path(uri: str, conn_id: str | None = None) -> Any:
    from airflow.sdk import ObjectStoragePath  # on use: the DAG file and plugins parse without it

    if "://" not in uri:
        return ObjectStoragePath(f"file://{uri}")
    return ObjectStoragePath(uri, conn_id=conn_id if uri.startswith("gs://") else None)
