"""A coordination.k8s.io Lease held around one critical section (e.g. deploying one model).

Acquired by creating it (409 AlreadyExists: someone holds it), or by replacing an expired one
with the resourceVersion it was read at (409 Conflict: another contender was faster). While
held it is renewed in the background every third of its duration; a holder that dies stops
renewing, and the Lease is taken over once `renewTime + leaseDurationSeconds` has passed, so
a crashed deploy never blocks the model for good. Released by deleting it with a
resourceVersion precondition: a Lease taken over meanwhile is left to its new holder.

Expiry compares the holder's renewTime with this machine's clock: keep Airflow's workers on
NTP (the margin is the lease duration, a minute by default).
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)


class LeaseTimeout(TimeoutError):
    """Another holder kept the Lease for longer than we were willing to wait."""


class LeaseLost(RuntimeError):
    """The Lease expired and was taken over while we held it: stop before touching anything."""


def conflict_reason(exc: ApiException) -> str | None:
    """AlreadyExists or Conflict: both are HTTP 409; the API server's Status tells them apart."""
    import json

    try:
        return json.loads(exc.body or "{}").get("reason")
    except (TypeError, ValueError):
        return None


def _now() -> datetime:
    return datetime.now(UTC)


def _micro_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Lease:
    def __init__(self, api, name: str, namespace: str, *, duration_seconds: int = 60,
                 poll_seconds: float = 2.0, labels: dict[str, str] | None = None, holder: str | None = None):
        self.api, self.name, self.namespace = api, name, namespace
        self.duration_seconds, self.poll_seconds = int(duration_seconds), poll_seconds
        self.labels = labels or {}
        self.holder = holder or f"{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"
        self._resource_version: str | None = None
        self._acquired_at: str | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()

    # ---- acquire, renew, release ---------------------------------------------------------------

    def acquire(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            current = self._try_acquire()
            if current is None:
                log.info("Lease %s/%s acquired by %s", self.namespace, self.name, self.holder)
                return
            if time.monotonic() > deadline:
                raise LeaseTimeout(f"Lease {self.namespace}/{self.name} is held by "
                                   f"{current.spec.holder_identity} (renewed {current.spec.renew_time}); "
                                   f"waited {timeout:.0f}s")
            time.sleep(self.poll_seconds)

    def _try_acquire(self):
        """None when acquired, else the Lease as its live holder left it."""
        try:
            created = self.api.create_namespaced_lease(namespace=self.namespace, body=self._body())
            self._resource_version = created.metadata.resource_version
            return None
        except ApiException as exc:
            if exc.status != 409:
                raise
        try:
            current = self.api.read_namespaced_lease(name=self.name, namespace=self.namespace)
        except ApiException as exc:
            if exc.status == 404:  # released between our create and read: try again at once
                return self._try_acquire()
            raise
        if not self._expired(current):
            return current
        log.warning("Lease %s/%s of %s expired (renewed %s); taking it over", self.namespace, self.name,
                    current.spec.holder_identity, current.spec.renew_time)
        try:
            replaced = self.api.replace_namespaced_lease(
                name=self.name, namespace=self.namespace, body=self._body(current.metadata.resource_version))
        except ApiException as exc:
            if exc.status in (404, 409):  # released, or another contender took it first
                return current
            raise
        self._resource_version = replaced.metadata.resource_version
        return None

    def renew(self) -> None:
        try:
            renewed = self.api.replace_namespaced_lease(name=self.name, namespace=self.namespace,
                                                        body=self._body(self._resource_version))
        except ApiException as exc:
            if exc.status in (404, 409):
                self._lost.set()
                raise LeaseLost(f"Lease {self.namespace}/{self.name} was taken over "
                                f"({conflict_reason(exc) or exc.status})") from exc
            raise
        self._resource_version = renewed.metadata.resource_version

    def release(self) -> None:
        if self._resource_version is None or self._lost.is_set():
            return
        try:
            self.api.delete_namespaced_lease(
                name=self.name, namespace=self.namespace,
                body={"preconditions": {"resourceVersion": self._resource_version}})
            log.info("Lease %s/%s released", self.namespace, self.name)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or taken over: not ours to delete
                raise
        finally:
            self._resource_version = None

    def check(self) -> None:
        """Raise LeaseLost if the Lease was taken over while held."""
        if self._lost.is_set():
            raise LeaseLost(f"Lease {self.namespace}/{self.name} expired and was taken over by another "
                            "holder")

    @property
    def lost(self) -> bool:
        return self._lost.is_set()

    @contextmanager
    def held(self, timeout: float) -> Iterator[Lease]:
        """Acquire, renew in the background while inside, release on the way out."""
        self.acquire(timeout)
        self._stop.clear()
        renewer = threading.Thread(target=self._renew_until_stopped, name=f"lease-{self.name}", daemon=True)
        renewer.start()
        try:
            yield self
        finally:
            self._stop.set()
            renewer.join()
            self.release()

    def _renew_until_stopped(self) -> None:
        while not self._stop.wait(self.duration_seconds / 3):
            try:
                self.renew()
            except LeaseLost as exc:
                log.error("%s", exc)
                return
            except Exception:  # an API hiccup: the next renewal may get through before expiry
                log.warning("renewing Lease %s/%s failed; retrying", self.namespace, self.name, exc_info=True)

    # ---- the object ----------------------------------------------------------------------------

    def _expired(self, lease) -> bool:
        spec = lease.spec
        last = spec.renew_time or spec.acquire_time
        if last is None or spec.holder_identity is None:
            return True
        if last.tzinfo is None:
            last = last.replace(tzinfo=UTC)
        return _now() > last + timedelta(seconds=spec.lease_duration_seconds or self.duration_seconds)

    def _body(self, resource_version: str | None = None) -> dict:
        now = _micro_time(_now())
        if resource_version is None or resource_version != self._resource_version:
            self._acquired_at = now  # acquiring (creating, or taking over); a renewal keeps it
        metadata = {"name": self.name, "namespace": self.namespace, "labels": self.labels}
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": {"holderIdentity": self.holder, "leaseDurationSeconds": self.duration_seconds,
                         "acquireTime": self._acquired_at, "renewTime": now}}
