"""Refuses a tune_train_serve run whose parameters break a rule across fields, before it exists.

Airflow validates each Param against its own JSON schema when a run is created; a rule that
involves two fields (top_n <= max_trials, a discrete space for grid, ...) is in no single
Param's schema, and Airflow offers no DAG-level hook before the run is created. The trigger
form and API clients both POST `/api/v2/dags/tune_train_serve/dagRuns`, so this root
middleware (an Airflow plugin's `fastapi_root_middlewares`) checks that request's conf, merged
over the Params' defaults as Airflow will merge it, with `params.validate_conf`, and answers
400 naming every broken rule's fields; the form shows that answer under its Trigger button.
An integer out of its range is answered here too, with its range; any other invalid single
field is passed on untouched, for Airflow's own message.
Runs created another way (CLI, schedule) meet the same rules in the run's first task.

Only a caller whom Airflow's auth manager lets trigger the DAG gets this answer; any other
request goes on untouched, so Airflow answers it (401 without a login, 403 without the right)
and nothing about the rules is told to a stranger. Its answers are about the run's parameters
only, never facts of the host (a `source` outside the data roots is told the roots, whether or
not a file is there: tune_contract.data_roots). A body over MAX_BODY is answered 413.
"""
from __future__ import annotations

import json
import re

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.auth.managers.simple.simple_auth_manager import SimpleAuthManager
from airflow.api_fastapi.core_api.security import resolve_user_from_token
from airflow.configuration import conf
from airflow.sdk.exceptions import ParamValidationError
from starlette.requests import Request

from tune_serve.config import DAG_ID
from tune_serve.workflow.params import ConfError, dag_params, validate_conf

TRIGGER_PATH = re.compile(rf"^(?:/.*)?/api/v2/dags/{re.escape(DAG_ID)}/dagRuns/?$")
# A trigger request is a few kB. A larger body is refused (413) whoever sends it, before it is
# read whole: it would otherwise pass unchecked, or make this check hold it all in memory.
MAX_BODY = 1 << 20


def _out_of_range(name: str, schema: dict, value) -> str | None:
    """An integer outside its range, said with the range: the Params state integer ranges as
    exclusive bounds (see params._int), whose JSON-schema message would quote the bound off by one."""
    if not isinstance(value, int) or isinstance(value, bool) or "exclusiveMinimum" not in schema:
        return None
    low, high = schema["exclusiveMinimum"] + 1, schema.get("exclusiveMaximum")
    if high is None:
        return f"{name}: {value} is out of range; allowed: at least {low:,}" if value < low else None
    high -= 1
    return (f"{name}: {value} is out of range; allowed: {low:,} to {high:,}"
            if not low <= value <= high else None)


def problems(conf: dict) -> str | None:
    """Why `conf` (the request's) is refused, or None when it passes or Airflow's own message
    about a single field says it best."""
    params = dag_params()
    resolved = {}
    for name, param in params.items():
        try:
            resolved[name] = param.resolve(conf[name]) if name in conf else param.resolve()
        except (ParamValidationError, TypeError, ValueError):
            message = _out_of_range(name, param.schema, conf.get(name))
            return f"invalid run parameters:\n- {message}" if message else None
    try:
        validate_conf(resolved)
    except ConfError as exc:
        return str(exc)
    except (KeyError, TypeError):
        return None
    return None


async def may_trigger(scope) -> bool:
    """Whether the request's caller (bearer token first, else the UI's cookie, as Airflow's own
    `get_user` reads them) may create runs of the DAG."""
    request = Request(scope)
    scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
    token = credentials if scheme.lower() == "bearer" else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    auth_manager = get_auth_manager()
    if not token:
        # the simple auth manager's all-admins mode (the loopback stack) makes every caller an
        # admin by adding a token in a middleware that may run after this one
        return isinstance(auth_manager, SimpleAuthManager) and conf.getboolean(
            "core", "simple_auth_manager_all_admins", fallback=False)
    try:
        user = await resolve_user_from_token(token)  # Airflow's own: expiry, forgery, revocation
        return auth_manager.is_authorized_dag(method="POST", user=user, access_entity=DagAccessEntity.RUN,
                                              details=DagDetails(id=DAG_ID))
    except Exception:  # expired, forged or unknown: Airflow's own check answers it
        return False


_TOO_LARGE = f"request body over {MAX_BODY:,} bytes; a trigger request is a few kB"


def _declared_length(scope) -> int:
    """The Content-Length the client declared (0 when none or not a number: the read counts)."""
    for name, value in scope.get("headers") or []:
        if name.lower() == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


async def _answer(send, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class TriggerGuard:
    """Pure ASGI: reads the POST body once and replays it to Airflow unchanged."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] != "POST" or not TRIGGER_PATH.match(scope["path"]):
            return await self.app(scope, receive, send)
        if _declared_length(scope) > MAX_BODY:
            return await _answer(send, 413, _TOO_LARGE)
        messages, size = [], 0
        while True:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            if size > MAX_BODY:
                return await _answer(send, 413, _TOO_LARGE)
            if message["type"] != "http.request" or not message.get("more_body"):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        message = None
        if await may_trigger(scope):
            try:
                conf = (json.loads(body or b"{}") or {}).get("conf") or {}
            except (ValueError, AttributeError):
                conf = None
            if isinstance(conf, dict):
                message = problems(conf)
        if message is not None:
            return await _answer(send, 400, message)

        async def replay():
            if messages:
                return messages.pop(0)
            return await receive()

        return await self.app(scope, replay, send)
