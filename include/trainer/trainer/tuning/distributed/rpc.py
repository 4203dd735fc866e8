"""The gRPC between workers and the chief: Keras Tuner's protocol, with the caller named.

Every call carries the run's search secret (`oracle_auth`); the chief refuses any other.

Every call a worker makes carries its tuner id as gRPC metadata, so the chief can renew
that tuner's lease on any call and refuse reports from a tuner that no longer holds the
trial (FAILED_PRECONDITION, raised as `LeaseLost` on the worker). A heartbeat is a
`GetTrial` flagged as such; it needs no change to Keras Tuner's protocol.

Early stopping rides on the heartbeat too: a heartbeat may carry the trial's objective after
an epoch (metadata `kt-epoch: STEP=VALUE`, STEP = epochs done), and the chief's answer carries
trailing metadata `kt-prune: REASON` when the pruning rule stops the trial (on every heartbeat
of that trial from then on, so a lost answer is repeated).

Keras Tuner's own client waits up to an hour per call (`wait_for_ready`) and gives up on
a call in flight when the chief dies. This client retries while the chief is unreachable
(each call is idempotent on the chief: a re-sent CreateTrial returns the trial already
assigned, a re-sent EndTrial of an ended trial is a no-op), and stops waiting once the
chief has left its result on storage.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable

import grpc
from keras_tuner.src import errors as kt_errors
from keras_tuner.src import protos
from keras_tuner.src.distribute import oracle_chief, oracle_client
from keras_tuner.src.engine import trial as trial_module

from trainer.errors import BadInput
from trainer.tuning.distributed.oracle_auth import secret_channel
from trainer.tuning.distributed.oracles import ForgedTrial, NotHolder

log = logging.getLogger("trainer.tuning.distributed.rpc")
TUNER_KEY = "kt-tuner-id"
HEARTBEAT_KEY = "kt-heartbeat"
# Tuner pods often start before the chief's (or outlive a restarted chief). gRPC's default
# reconnect backoff grows to 120 s, so a tuner that waited would join up to two minutes after
# the chief listens while the others take its share of the trials; a cap of a few seconds
# costs one connection attempt per tuner every few seconds.
RECONNECT_OPTIONS = (("grpc.initial_reconnect_backoff_ms", 1000), ("grpc.max_reconnect_backoff_ms", 5000))
EPOCH_KEY = "kt-epoch"
PRUNE_KEY = "kt-prune"
RETRYABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass(frozen=True)
class Beat:
    """The chief's answer to a heartbeat."""

    lost: bool = False
    pruned: str | None = None


class LeaseLost(kt_errors.FatalError):
    """The chief gave this worker's trial to another worker; drop it. (A FatalError so that
    Keras Tuner does not record it as a failed trial.)"""


class SearchFinished(kt_errors.FatalError):
    """The chief has finished the search and left; nothing more to do."""


# -- chief side --------------------------------------------------------------------------------


class LeasedServicer(oracle_chief.OracleServicer):
    """Keras Tuner's servicer, attributing each call to its tuner and fencing stale reports."""

    @staticmethod
    def _caller(context) -> tuple[str | None, bool]:
        metadata = dict(context.invocation_metadata())
        return metadata.get(TUNER_KEY), HEARTBEAT_KEY in metadata

    @staticmethod
    def _epoch(context) -> tuple[int, float] | None:
        """The epoch report a heartbeat carries, if any and well-formed (else ignored)."""
        text = dict(context.invocation_metadata()).get(EPOCH_KEY)
        if not text:
            return None
        step, _, value = text.partition("=")
        try:
            return int(step), float(value)
        except ValueError:
            return None

    @staticmethod
    def _fenced(context, call, *args, **kwargs):
        try:
            return call(*args, **kwargs)
        except NotHolder as exc:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))

    def UpdateTrial(self, request, context):
        tuner_id, _ = self._caller(context)
        trial = self._fenced(context, self.oracle.update_trial_from, tuner_id, request.trial_id,
                             dict(request.metrics), step=request.step)
        return protos.get_service().UpdateTrialResponse(trial=trial.to_proto())

    def EndTrial(self, request, context):
        tuner_id, _ = self._caller(context)
        trial = trial_module.Trial.from_proto(request.trial)
        try:
            self._fenced(context, self.oracle.end_trial_from, tuner_id, trial)
        except ForgedTrial as exc:  # the trial keeps the chief's hyperparameters
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        return protos.get_service().EndTrialResponse()

    def GetTrial(self, request, context):
        tuner_id, heartbeat = self._caller(context)
        if heartbeat:
            epoch = self._epoch(context)
            if epoch is None:
                self._fenced(context, self.oracle.check_holder, tuner_id, request.trial_id)
                decision = self.oracle.pruning_decision(request.trial_id)
            else:
                decision = self._fenced(context, self.oracle.report_epoch, tuner_id, request.trial_id, *epoch)
            if decision.prune:
                context.set_trailing_metadata(((PRUNE_KEY, _ascii(decision.reason)),))
        else:
            self.oracle.touch(tuner_id)
        return super().GetTrial(request, context)

    def GetSpace(self, request, context):
        self.oracle.touch(self._caller(context)[0])
        return super().GetSpace(request, context)

    def UpdateSpace(self, request, context):
        # The space is data, fixed by the chief's flags: a worker cannot add to or change it.
        self.oracle.touch(self._caller(context)[0])
        return protos.get_service().UpdateSpaceResponse()

    def GetBestTrials(self, request, context):
        self.oracle.touch(self._caller(context)[0])
        return super().GetBestTrials(request, context)


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode()[:1000]


def add_servicer(server, oracle) -> None:
    """Serve `oracle` on `server` (built with `oracle_auth.SecretCheck` among its interceptors)."""
    protos.get_service_grpc().add_OracleServicer_to_server(LeasedServicer(oracle), server)


# -- worker side -------------------------------------------------------------------------------


class _RetryingStub:
    """Stands in for OracleStub: names the caller, retries while the chief is unreachable."""

    def __init__(self, stub, tuner_id: str, wait_seconds: float, search_done: Callable[[], bool]):
        self._stub = stub
        self._metadata = ((TUNER_KEY, tuner_id),)
        self._wait_seconds = wait_seconds
        self._attempt_seconds = min(30.0, wait_seconds)
        self._search_done = search_done

    def __getattr__(self, name):
        method = getattr(self._stub, name)

        def call(request, **_ignored):  # Keras Tuner's own wait_for_ready/timeout are replaced
            give_up = time.monotonic() + self._wait_seconds
            warned = False
            while True:
                try:
                    return method(request, wait_for_ready=True, timeout=self._attempt_seconds, metadata=self._metadata)
                except grpc.RpcError as exc:
                    if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                        raise LeaseLost(exc.details()) from None
                    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
                        raise BadInput("--secret-file", f"the chief refused this worker's search secret: "
                                                        f"{exc.details()}") from None
                    if exc.code() not in RETRYABLE:
                        raise
                    if self._search_done():
                        raise SearchFinished("the chief has finished the search") from None
                    if time.monotonic() > give_up:
                        raise
                    if not warned:
                        log.warning("%s: chief unreachable (%s); retrying for up to %.0fs", name, exc.code().name,
                                    give_up - time.monotonic())
                        warned = True
                    time.sleep(1.0)

        return call


class LeasedOracleClient(oracle_client.OracleClient):
    """Keras Tuner's OracleClient over `_RetryingStub`, plus heartbeats; IDLE answers are
    waited out here (`poll_seconds` apart) instead of re-asking in a tight loop."""

    def __init__(self, oracle, address: str, tuner_id: str, wait_seconds: float, poll_seconds: float,
                 search_done: Callable[[], bool], secret: str):
        # Not calling OracleClient.__init__: it reads the address from the environment.
        self._oracle = oracle
        self._channel = secret_channel(address, secret, RECONNECT_OPTIONS)  # every call carries the secret
        self._raw = protos.get_service_grpc().OracleStub(self._channel)
        self.stub = _RetryingStub(self._raw, tuner_id, wait_seconds, search_done)
        self.tuner_id = tuner_id
        self.multi_worker = False
        self.should_report = True
        self._poll_seconds = poll_seconds

    def create_trial(self, tuner_id):
        while True:
            trial = super().create_trial(tuner_id)
            if trial.status != trial_module.TrialStatus.IDLE:
                return trial
            time.sleep(self._poll_seconds)

    def heartbeat(self, trial_id: str, timeout: float, epoch: tuple[int, float] | None = None) -> Beat:
        """Renew the lease on `trial_id`, reporting `epoch` (step, objective) if given. `lost` only
        when the chief says this tuner no longer holds the trial (an unreachable chief is not a
        lost lease: a restarted chief keeps assignments); `pruned` the chief's reason to stop it."""
        metadata = [(TUNER_KEY, self.tuner_id), (HEARTBEAT_KEY, "1")]
        if epoch is not None:
            metadata.append((EPOCH_KEY, f"{int(epoch[0])}={float(epoch[1])!r}"))
        try:
            _, call = self._raw.GetTrial.with_call(protos.get_service().GetTrialRequest(trial_id=trial_id),
                                                   timeout=timeout, metadata=tuple(metadata))
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                log.warning("lease on trial %s lost: %s", trial_id, exc.details())
                return Beat(lost=True)
            return Beat()
        pruned = dict(call.trailing_metadata() or ()).get(PRUNE_KEY)
        return Beat(pruned=pruned)

    def close(self) -> None:
        self._channel.close()
