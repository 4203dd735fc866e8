"""A client of TF Serving's REST API, for whichever backend runs the server.

Only TF Serving's own routes and shapes (status, predict by version or label), so the same
calls work against the local stand-in and a real TF Serving Deployment.
"""
from __future__ import annotations

import math
import time
from typing import Any

import httpx

from .errors import ModelRejected, ServingUnavailable

AVAILABLE, END = "AVAILABLE", "END"


class TFServingREST:
    def __init__(self, base_url: str, model_name: str, timeout: float = 10):
        self.base_url = base_url.rstrip("/")
        self.model_name = model_name
        self.model_path = f"/v1/models/{model_name}"
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TFServingREST:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def predict_url(self, version: int | None = None) -> str:
        route = f"/versions/{version}" if version is not None else ""
        return f"{self.base_url}/v1/models/{self.model_name}{route}:predict"

    def version_status(self, version: int | None = None, label: str | None = None) -> dict | None:
        """`{"version", "state", "status"}` of one version (or of what a label points at); None if unknown."""
        route = f"/versions/{version}" if version is not None else f"/labels/{label}"
        response = self.http.get(self.model_path + route)
        # TF Serving: 404 for an unknown version, 400 "Unrecognized servable version label" for a label
        if response.status_code == 404 or (response.status_code == 400 and label is not None
                                           and "Unrecognized servable version label" in response.text):
            return None
        response.raise_for_status()
        return response.json()["model_version_status"][0]

    def available_versions(self) -> list[int]:
        response = self.http.get(self.model_path)
        if response.status_code == 404:  # no version yet
            return []
        response.raise_for_status()
        return sorted(int(s["version"]) for s in response.json()["model_version_status"]
                      if s["state"] == AVAILABLE)

    def wait_available(self, version: int, timeout: float) -> None:
        """Until the version is AVAILABLE. Raises ModelRejected if it failed to load."""
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            status = self._status_or_none(version=version)
            if status and status["state"] == AVAILABLE:
                return
            if status and status["state"] == END and status["status"]["error_code"] != "OK":
                raise ModelRejected(f"version {version} of {self.model_name} failed to load: "
                                    f"{status['status']['error_message']}")
            time.sleep(0.2)
        raise ServingUnavailable(f"version {version} of {self.model_name} not AVAILABLE within "
                                 f"{timeout:.0f}s (last status: {status})")

    def wait_label(self, label: str, version: int, timeout: float) -> None:
        """Until the server resolves `label` to `version` (it re-reads its config by polling)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self._status_or_none(label=label)
            if status and int(status["version"]) == version and status["state"] == AVAILABLE:
                return
            time.sleep(0.2)
        raise ServingUnavailable(f"label {label!r} of {self.model_name} did not move to version {version} "
                                 f"within {timeout:.0f}s")

    def predict(self, instances: list[dict], version: int | None = None,
                label: str | None = None) -> httpx.Response:
        """TF Serving's row format without a signature name: the model's serving_default."""
        route = f"/versions/{version}" if version is not None else f"/labels/{label}" if label else ""
        return self.http.post(f"{self.model_path}{route}:predict",
                              json=predict_body([instance for instance in instances]))

    def smoke_test(self, version: int, instance: dict) -> Any:
        """One prediction from this very version; its value, or ModelRejected if it is not a finite number."""
        response = self.predict([instance], version=version)
        if response.status_code != 200:
            raise ModelRejected(f"smoke test of version {version} of {self.model_name}: "
                                f"HTTP {response.status_code}: {response.text[:500]}")
        predictions = response.json().get("predictions")
        if (not isinstance(predictions, list) or len(predictions) != 1
                or not finite_prediction(predictions[0])):
            raise ModelRejected(f"smoke test of version {version} of {self.model_name}: "
                                f"expected one finite prediction, got {str(predictions)[:500]}")
        return predictions[0]

    def _status_or_none(self, **selector) -> dict | None:
        try:
            return self.version_status(**selector)
        except httpx.TransportError:  # restarting server: keep waiting until the deadline
            return None


def predict_body(instances: list[dict]) -> dict:
    """The body every client of the trainer's models sends (README, smoke tests): row format,
    one scalar per feature, no `signature_name`, so TF Serving uses serving_default."""
    return {"instances": instances}


def finite_prediction(value: Any) -> bool:
    """Every number in one prediction is finite and there is at least one. Text is allowed
    beside the numbers: a classifier serves its class names with the probabilities."""
    numbers: list[float] = []

    def walk(v: Any) -> bool:
        if isinstance(v, list):
            return bool(v) and all(walk(x) for x in v)
        if isinstance(v, dict):
            return bool(v) and all(walk(x) for x in v.values())
        if isinstance(v, str):
            return True
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            numbers.append(v)
            return math.isfinite(v)
        return False

    return walk(value) and bool(numbers)
