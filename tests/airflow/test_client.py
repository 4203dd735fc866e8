"""The REST client rides out a locked SQLite metadata DB (500) instead of failing a whole run."""
import httpx
import pytest

from tune_serve import client as client_module
from tune_serve.client import AirflowClient


def _client(handler) -> AirflowClient:
    client = AirflowClient("http://airflow.test")
    client.http = httpx.Client(base_url="http://airflow.test/api/v2", transport=httpx.MockTransport(handler))
    return client


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch):
    monkeypatch.setattr(client_module.time, "sleep", lambda _: None)


def test_reads_retry_a_locked_database():
    calls = []

    def handler(request):
        calls.append(request.url.path)
        if len(calls) < 3:
            return httpx.Response(500, json={"detail": "(sqlite3.OperationalError) database is locked"})
        return httpx.Response(200, json={"dag_run_id": "r", "state": "running"})

    assert _client(handler).run_state("r") == "running"
    assert calls == ["/api/v2/dags/tune_train_serve/dagRuns/r"] * 3


def test_a_server_that_stays_broken_is_reported():
    def handler(request):
        return httpx.Response(503, text="down")

    with pytest.raises(httpx.HTTPStatusError, match="503"):
        _client(handler).run_state("r")


def test_client_errors_are_not_retried():
    calls = []

    def handler(request):
        calls.append(1)
        return httpx.Response(404, json={"detail": "not found"})

    with pytest.raises(httpx.HTTPStatusError):
        _client(handler).run_state("r")
    assert len(calls) == 1


def test_a_trigger_is_never_sent_twice():
    calls = []

    def handler(request):
        calls.append(request.method)
        return httpx.Response(500, json={"detail": "database is locked"})

    with pytest.raises(ValueError, match="trigger refused \\(500\\)"):
        _client(handler).trigger({})
    assert calls == ["POST"]
