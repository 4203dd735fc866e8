"""`tune`: a Keras Tuner worker. Takes trials from the chief until it says stop, and reports
the trials it finished.

Restart it with the same `--tuner-id` after a kill (a preemption) and the chief hands it
back its unfinished trial, which resumes from its last completed epoch.
"""
from __future__ import annotations

import json
import logging
import os
import re

from tune_contract.steps import TuneArgs

from trainer import data, storage
from trainer.errors import BadInput
from trainer.tuning.algorithms import benchmarks
from trainer.tuning.distributed import oracle_auth
from trainer.tuning import settings as st

log = logging.getLogger("trainer.tuning.tune_step")
_TUNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _tuner_id(value: str | None) -> str:
    if not value:
        raise BadInput("--tuner-id", "required (or set KERASTUNER_TUNER_ID)")
    if not _TUNER_ID.match(value):
        raise BadInput("--tuner-id", f"{value!r}: use letters, digits, '_', '.', '-' (at most 63)")
    if "chief" in value:  # Keras Tuner makes any process whose id contains 'chief' a chief
        raise BadInput("--tuner-id", f"{value!r}: must not contain 'chief'")
    return value


def _address(value: str | None) -> tuple[str, int]:
    if value is None:
        ip, port = os.environ.get("KERASTUNER_ORACLE_IP"), os.environ.get("KERASTUNER_ORACLE_PORT")
        if not ip or not port:
            raise BadInput("--oracle-address", "required (or set KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT)")
        value = f"{ip}:{port}"
    host, _, port = value.rpartition(":")
    if not host:
        raise BadInput("--oracle-address", f"{value!r} is not HOST:PORT")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise BadInput("--oracle-address", f"port must be an integer >= 1 and <= 65535, got {port!r}")
    return host, int(port)


def run(args: TuneArgs) -> dict:
    """`args`: parsed by `TuneArgs.from_args`, so the seconds are in their ranges already."""
    settings = st.from_args(args)
    tuner_id = _tuner_id(args.tuner_id)
    host, port = _address(args.oracle_address)
    function = args.objective_function
    if function:
        sleep = benchmarks.DEFAULT_SLEEP_SECONDS[function] if args.sleep_seconds is None else args.sleep_seconds
    elif args.sleep_seconds is not None:
        raise BadInput("--sleep-seconds", "only with --objective-function")
    st.configure_logging()

    if not function:
        data_dir = data.data_dir(args.run_root)
        spec = data.load_feature_spec(data_dir)
    secret = oracle_auth.read_secret(args.secret_file)
    search_file = storage.join(settings.tuning_dir, st.SEARCH_FILE)
    if storage.exists(search_file):
        st.check_same_search(settings, json.loads(storage.read_text(search_file)), "worker")
    done_file = storage.join(settings.tuning_dir, st.DONE_FILE)
    if storage.exists(done_file):  # started (or retried) after the search ended
        log.info("the search is over (%s); nothing to do", done_file)
        return {"tuner_id": tuner_id, "replicas": 0, "trials": []}  # nothing trained

    # Keras Tuner decides worker vs chief, and where the tuner's own state goes, from these.
    os.environ.update(KERASTUNER_TUNER_ID=tuner_id, KERASTUNER_ORACLE_IP=host, KERASTUNER_ORACLE_PORT=str(port))
    # Keras Tuner and TensorFlow only now: bad flags above exit 2 in a second, not after their import.
    from trainer.tuning import function_tuner
    from trainer.tuning.keras_trial import KerasTrialTuner, check_objective
    from trainer.tuning.distributed.oracles import make_oracle
    from trainer.tuning.distributed.rpc import LeasedOracleClient, SearchFinished

    if function:
        local = make_oracle(settings)  # only lends its objective to the client, as in Keras Tuner
        tuner = function_tuner.make_tuner(local, settings, tuner_id, sleep)
    else:
        model, build_space, search_space = st.load_model(settings, spec)
        check_objective(settings.objective, data_dir, spec, model, build_space)
        local = make_oracle(settings, hyperparameters=search_space)
        tuner = KerasTrialTuner(local, settings, tuner_id, data_dir, spec, model, build_space)
    client = LeasedOracleClient(local, f"{host}:{port}", tuner_id, wait_seconds=args.oracle_wait_seconds,
                                poll_seconds=args.poll_seconds, search_done=lambda: storage.exists(done_file),
                                secret=secret)
    tuner.connect(client, args.heartbeat_seconds)
    try:
        tuner.search()
    except SearchFinished:
        log.info("the oracle finished the search while this worker waited for it")
    finally:
        tuner.close()
        client.close()
    log.info("finished %d trial(s): %s", len(tuner.finished), [t["trial_id"] for t in tuner.finished])
    # 1, or the GPUs of the pod its trials were mirrored over (KerasTrialTuner.strategy)
    replicas = getattr(getattr(tuner, "strategy", None), "num_replicas_in_sync", 1)
    return {"tuner_id": tuner_id, "replicas": replicas, "trials": tuner.finished}
