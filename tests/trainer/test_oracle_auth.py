"""The chief's gRPC service on a real `oracle` process: only callers carrying the run's search
secret are served, and a tuner cannot end a trial with hyperparameters of its own."""
from __future__ import annotations

import subprocess
import sys

import grpc
import pytest
from tuning_helpers import Proc, Search, env, write_secret

SLEEP = ["--objective-function", "sleep", "--max-trials", "2"]


@pytest.fixture
def search(tmp_path):
    search = Search(tmp_path, tmp_path / "runs" / "r1", *SLEEP)
    search.chief("--lease-seconds", "120")
    yield search
    search.stop_all()


def _call(search: Search, method: str, request, secret: str | None, tuner_id: str = "tuner-0"):
    from keras_tuner.src import protos

    metadata = [("kt-tuner-id", tuner_id)] + ([("kt-oracle-secret", secret)] if secret is not None else [])
    with grpc.insecure_channel(f"127.0.0.1:{search.port}") as channel:
        stub = protos.get_service_grpc().OracleStub(channel)
        return getattr(stub, method)(request, metadata=metadata, timeout=120, wait_for_ready=True)


def _refused(search, method, request, secret) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as refused:
        _call(search, method, request, secret)
    return refused.value


def test_a_call_without_the_secret_or_with_a_wrong_one_is_refused(search):
    from keras_tuner.src import protos

    service = protos.get_service()
    secret = search.secret_file.read_text()
    for wrong in (None, "", "not-the-secret", secret[:-1], secret + "x", secret.upper()):
        for method, request in (("GetSpace", service.GetSpaceRequest()),
                                ("CreateTrial", service.CreateTrialRequest(tuner_id="tuner-0"))):
            error = _refused(search, method, request, wrong)
            assert error.code() == grpc.StatusCode.UNAUTHENTICATED, (method, wrong, error)
            assert "search secret" in error.details()
    assert search.oracle_state()["ongoing_trials"] == {}  # no refused call handed out a trial
    from keras_tuner.src.engine import hyperparameters as hp_module

    space = _call(search, "GetSpace", service.GetSpaceRequest(), secret).hyperparameters
    assert [hp.name for hp in hp_module.HyperParameters.from_proto(space).space] == ["x"]


def test_a_forged_end_trial_is_refused_and_the_trial_keeps_the_chiefs_values(search):
    from keras_tuner.src import protos
    from keras_tuner.src.engine import trial as trial_module

    service = protos.get_service()
    secret = search.secret_file.read_text()
    handed = trial_module.Trial.from_proto(
        _call(search, "CreateTrial", service.CreateTrialRequest(tuner_id="tuner-0"), secret).trial)
    original = dict(handed.hyperparameters.values)

    for forged_value, reason in ((7.5, "outside [0.0, 1.0]"), (original["x"] / 2 + 0.25, "was handed out as")):
        forged = trial_module.Trial.from_proto(handed.to_proto())
        forged.hyperparameters.values["x"] = forged_value
        forged.status = "COMPLETED"
        error = _refused(search, "EndTrial", service.EndTrialRequest(trial=forged.to_proto()), secret)
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and reason in error.details(), error
        stored = trial_module.Trial.from_proto(
            _call(search, "GetTrial", service.GetTrialRequest(trial_id=handed.trial_id), secret).trial)
        assert stored.hyperparameters.values == original and stored.status == "RUNNING"

    unknown = trial_module.Trial.from_proto(handed.to_proto())
    unknown.hyperparameters.Fixed("units", 10**9)  # a hyperparameter the space does not have
    error = _refused(search, "EndTrial", service.EndTrialRequest(trial=unknown.to_proto()), secret)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and "units is not a parameter" in error.details()

    _call(search, "UpdateTrial", service.UpdateTrialRequest(trial_id=handed.trial_id, metrics={"value": 0.5}),
          secret)
    honest = trial_module.Trial.from_proto(handed.to_proto())
    honest.status = "COMPLETED"
    _call(search, "EndTrial", service.EndTrialRequest(trial=honest.to_proto()), secret)
    ended = search.trial_state(handed.trial_id)
    assert ended["status"] == "COMPLETED" and ended["hyperparameters"]["values"] == original


def test_update_space_cannot_change_the_space(search):
    from keras_tuner.src import protos
    from keras_tuner.src.engine import hyperparameters as hp_module

    service = protos.get_service()
    secret = search.secret_file.read_text()
    extra = hp_module.HyperParameters()
    extra.Int("units", 1, 10**9)
    _call(search, "UpdateSpace", service.UpdateSpaceRequest(hyperparameters=extra.to_proto()), secret)
    space = hp_module.HyperParameters.from_proto(_call(search, "GetSpace", service.GetSpaceRequest(), secret)
                                                 .hyperparameters)
    assert [hp.name for hp in space.space] == ["x"]


def test_a_worker_with_another_secret_stops_naming_the_flag(search, tmp_path):
    wrong = write_secret(tmp_path / "wrong.secret")
    worker = Proc("intruder", ["tune", *search.flags, "--tuner-id", "tuner-9", "--oracle-address",
                               f"127.0.0.1:{search.port}", "--oracle-wait-seconds", "120"],
                  tmp_path, {"KERASTUNER_ORACLE_SECRET_FILE": str(wrong)})
    assert worker.wait(240) == 2, worker.tail()
    assert "error: --secret-file: the chief refused this worker's search secret" in worker.log.read_text()
    assert search.oracle_state()["ongoing_trials"] == {}


@pytest.mark.parametrize("content,reason", [(None, "required"), ("short", "at least 32 characters")])
def test_a_chief_without_a_usable_secret_exits_2(tmp_path, content, reason):
    flags = []
    if content is not None:
        (tmp_path / "s").write_text(content)
        flags = ["--secret-file", str(tmp_path / "s")]
    proc = subprocess.run([sys.executable, "-m", "trainer", "oracle", "--run-root", str(tmp_path / "run"), "--port",
                           "1", "--xcom-file", str(tmp_path / "x.json"), *SLEEP, *flags],
                          capture_output=True, text=True, env=env(), timeout=120)
    assert proc.returncode == 2 and proc.stderr.strip().startswith("error: --secret-file: "), proc.stderr
    assert reason in proc.stderr and not (tmp_path / "run").exists()
