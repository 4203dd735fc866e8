"""Rules across fields refused when a run is triggered through the API, before it exists.
In-process here, around a stand-in for Airflow's route; the browser test drives the real form."""
import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from tune_serve.web import trigger_guard
from tune_serve.web.trigger_guard import TriggerGuard

PATH = "/api/v2/dags/tune_train_serve/dagRuns"


async def _allowed(scope):
    return True


@pytest.fixture
def client(monkeypatch):
    # a caller the auth manager lets trigger the DAG (who may is proven on a real API server,
    # test_artifacts_auth.py); here the rules
    monkeypatch.setattr(trigger_guard, "may_trigger", _allowed)
    airflow = FastAPI()
    seen = []

    @airflow.post(PATH)
    @airflow.post("/api/v2/dags/other/dagRuns")
    async def trigger(request: Request):
        seen.append(await request.json())
        return {"created": True}

    airflow.add_middleware(TriggerGuard)
    client = TestClient(airflow)
    client.seen = seen
    return client


@pytest.mark.parametrize("conf,field", [
    ({"top_n": 5, "max_trials": 3}, r"top_n \(5\) must be at most max_trials \(3\)"),
    ({"num_tuners": 4, "max_trials": 3}, r"num_tuners \(4\) must be at most max_trials \(3\)"),
    ({"early_stopping_patience": 9, "training_epochs": 3}, r"early_stopping_patience \(9\)"),
    ({"algorithm": "grid", "search_space": [{"name": "learning_rate", "type": "float", "min": 0.001, "max": 0.1}]},
     "search_space.learning_rate: the grid algorithm needs every parameter discrete"),
])
def test_a_broken_cross_field_rule_is_refused_before_the_run_exists(client, conf, field):
    response = client.post(PATH, json={"conf": conf, "logical_date": None})
    assert response.status_code == 400
    assert __import__("re").search(field, response.json()["detail"])
    assert client.seen == []


def test_a_good_conf_reaches_airflow_unchanged(client):
    body = {"conf": {"max_trials": 4, "top_n": 2, "training_epochs": 3}, "logical_date": None, "note": "x"}
    assert client.post(PATH, json=body).json() == {"created": True}
    assert client.seen == [body]


@pytest.mark.parametrize("conf,message", [
    ({"max_trials": 0}, "max_trials: 0 is out of range; allowed: 1 to 10,000"),
    ({"num_tuners": 1000}, "num_tuners: 1000 is out of range; allowed: 1 to 256"),
    ({"sample_rows": 10}, "sample_rows: 10 is out of range; allowed: at least 100"),
])
def test_an_integer_out_of_range_is_refused_with_its_range(client, conf, message):
    response = client.post(PATH, json={"conf": conf})
    assert response.status_code == 400 and message in response.json()["detail"]


@pytest.mark.parametrize("path,body", [
    (PATH, {"conf": {"max_trials": "four", "top_n": 5}}),  # a single bad field: Airflow's own message
    ("/api/v2/dags/other/dagRuns", {"conf": {"top_n": 5, "max_trials": 3}}),  # another DAG
])
def test_what_is_not_ours_to_judge_passes(client, path, body):
    assert client.post(path, json=body).status_code == 200


def test_a_caller_who_may_not_trigger_is_left_to_airflow(client, monkeypatch):
    async def refused(scope):
        return False

    monkeypatch.setattr(trigger_guard, "may_trigger", refused)
    body = {"conf": {"top_n": 5, "max_trials": 3}}
    assert client.post(PATH, json=body).json() == {"created": True}  # Airflow's own auth answers it
    assert client.seen == [body]


def test_a_body_over_the_limit_is_refused_never_passed_on_unchecked(client, monkeypatch):
    """It used to skip the check: the run was created and failed later."""
    async def refused(scope):
        return False

    big = {"conf": {"top_n": 5, "max_trials": 3}, "note": "x" * (trigger_guard.MAX_BODY + 1)}
    response = client.post(PATH, json=big)
    assert response.status_code == 413 and "request body over 1,048,576 bytes" in response.json()["detail"]
    monkeypatch.setattr(trigger_guard, "may_trigger", refused)  # whoever sends it
    assert client.post(PATH, json=big).status_code == 413
    assert client.seen == []


def test_a_large_body_sent_in_chunks_without_a_length_is_refused(client):
    def chunks():
        yield b'{"conf": {}, "note": "'
        for _ in range(trigger_guard.MAX_BODY // 65536 + 1):
            yield b"x" * 65536
        yield b'"}'

    response = client.post(PATH, content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and client.seen == []


def test_the_answer_tells_no_host_fact(client):
    """Whether a file exists on the API server's host is not the caller's to learn."""
    answers = [client.post(PATH, json={"conf": {"source": path, "label": "y"}}).json()["detail"]
               for path in ("/etc/hostname.csv", "/no/such/dir/x.csv")]
    assert answers[0] == answers[1] and "not under TUNE_SERVE_DATA_ROOTS" in answers[0]
    assert "no file" not in answers[0]
