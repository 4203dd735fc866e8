"""The search secret: only a run's chief and its tuners know it, and every RPC carries it.

Keras Tuner's gRPC service has no authentication of its own: anyone who reaches the chief's
port could claim trials, report objectives and send hyperparameters. The chief reads the
secret from a file (`--secret-file`, default KERASTUNER_ORACLE_SECRET_FILE: on a cluster a
Kubernetes Secret mounted into the chief and tuner pods only, locally a file only the user
can read) and refuses, with UNAUTHENTICATED, every call whose metadata does not carry it;
the comparison takes constant time. Workers add it to every call through a client
interceptor on their channel, so no call path can forget it.
"""
from __future__ import annotations

import hmac
from collections import namedtuple

import grpc
from tune_contract.enums import ORACLE_SECRET_FILE_ENV as SECRET_FILE_ENV

from trainer.errors import BadInput

METADATA_KEY = "kt-oracle-secret"
MIN_LENGTH = 32  # characters: a token of at least 192 random bits, base64-encoded


def read_secret(path: str | None) -> str:
    """The secret in `path`, refused (BadInput) if missing, unreadable or too short to be one."""
    if not path:
        raise BadInput("--secret-file", f"required (or set {SECRET_FILE_ENV}): the chief accepts only calls "
                                        "carrying the run's search secret")
    try:
        with open(path) as f:
            secret = f.read().strip()
    except OSError as exc:
        raise BadInput("--secret-file", f"cannot read {path}: {exc.strerror}") from None
    if len(secret) < MIN_LENGTH or not secret.isprintable():
        raise BadInput("--secret-file", f"{path} must hold one printable token of at least {MIN_LENGTH} characters")
    return secret


# -- chief side --------------------------------------------------------------------------------


def _refuse(request, context):
    context.abort(grpc.StatusCode.UNAUTHENTICATED, "this call does not carry the run's search secret")


class SecretCheck(grpc.ServerInterceptor):
    """Lets a call through only if its metadata carries the search secret."""

    def __init__(self, secret: str):
        self._secret = secret.encode()

    def intercept_service(self, continuation, handler_call_details):
        given = next((value for key, value in handler_call_details.invocation_metadata or ()
                      if key == METADATA_KEY), "")
        if isinstance(given, str):
            given = given.encode()
        if hmac.compare_digest(given, self._secret):
            return continuation(handler_call_details)
        return grpc.unary_unary_rpc_method_handler(_refuse)  # every Keras Tuner RPC is unary-unary


# -- worker side -------------------------------------------------------------------------------


class _CallDetails(namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials",
                                               "wait_for_ready", "compression")), grpc.ClientCallDetails):
    pass


class _AddSecret(grpc.UnaryUnaryClientInterceptor):
    def __init__(self, secret: str):
        self._entry = (METADATA_KEY, secret)

    def intercept_unary_unary(self, continuation, details, request):
        metadata = [*(details.metadata or ()), self._entry]
        return continuation(_CallDetails(details.method, details.timeout, metadata, details.credentials,
                                         details.wait_for_ready, details.compression), request)


def secret_channel(address: str, secret: str, options: tuple[tuple[str, int], ...] = ()) -> grpc.Channel:
    """A channel to the chief at `address` (gRPC channel `options`) whose every call carries the secret."""
    return grpc.intercept_channel(grpc.insecure_channel(address, options=options), _AddSecret(secret))
