"""`oracle`: the Keras Tuner chief. Serves trials over gRPC until the search is over, then
reports every trial, best first.

Restartable: its state lives in `{run_root}/tuning/` and a restart with the same flags
resumes it (Keras Tuner's overwrite=False reload), running trials still assigned to their
workers. It stops when the trials are done, or at `--deadline-seconds`; a worker silent for
`--lease-seconds` loses its trial to another worker (see trainer.tuning.distributed.oracles).

Every RPC must carry the run's search secret, read from `--secret-file` (see
trainer.tuning.distributed.oracle_auth); a tuner's reported hyperparameters must be those it was handed.

Binds `--bind:--port` itself (Keras Tuner's chief would bind KERASTUNER_ORACLE_IP, the
address workers dial, which inside a pod is the Service name and cannot be bound).
"""
from __future__ import annotations

import json
import logging
import time
from concurrent import futures

from tune_contract.steps import OracleArgs

from trainer import storage
from trainer.errors import StepFailed
from trainer.tuning.distributed import oracle_auth
from trainer.tuning import settings as st

log = logging.getLogger("trainer.tuning.oracle_step")


def run(args: OracleArgs) -> dict:
    """`args`: parsed by `OracleArgs.from_args`, so --port (required), the lease, the deadline and
    the counts are in their ranges already."""
    settings = st.from_args(args)
    port, lease = args.port, args.lease_seconds
    standby = None if args.standby_tuners == "all" else int(args.standby_tuners)
    secret = oracle_auth.read_secret(args.secret_file)
    st.configure_logging()
    # Keras Tuner, gRPC and TensorFlow only now: bad flags above exit 2 in a second, not after their import.
    from trainer.tuning.distributed.oracles import make_oracle

    hyperparameters = None  # the declarative space (built-in model, benchmark function)
    if settings.user_model:  # what the model declares, with --search-space applied
        from trainer import data

        spec = data.load_feature_spec(data.data_dir(settings.args.run_root))
        hyperparameters = st.load_model(settings, spec)[2]

    server = _listen(f"{args.bind}:{port}", secret)  # before touching the state: a second chief must fail first

    search_file = storage.join(settings.tuning_dir, st.SEARCH_FILE)
    recorded = json.loads(storage.read_text(search_file)) if storage.exists(search_file) else None
    st.check_same_search(settings, recorded, "oracle")

    oracle = make_oracle(settings, lease_seconds=lease, deadline_seconds=args.deadline_seconds,
                         max_handoffs=args.max_handoffs, standby_tuners=standby, hyperparameters=hyperparameters)
    oracle._set_project_dir(settings.args.run_root, st.TUNING_DIR)
    if storage.exists(oracle._get_oracle_fname()):
        oracle.reload()  # overwrite=False: never delete a search other processes share
    else:
        from trainer.tuning import warm_start

        oracle.save()
        warm_start.record_space(oracle, settings)  # what the next run's chief compares its space with
        if args.warm_start_from:  # once, before any trial is handed out; a restart keeps the seeds
            warm_start.seed(oracle, settings, args.warm_start_from)
    if recorded is None:
        storage.write_text(search_file, json.dumps(settings.identity(), indent=2, sort_keys=True))
    done_file = storage.join(settings.tuning_dir, st.DONE_FILE)
    storage.remove(done_file)  # serving again: workers must not take an old result for the end

    started = time.monotonic()
    _serve(server, oracle, f"{args.bind}:{port}", lease)
    result = build_result(oracle, settings)
    log.info("search over in %.1fs: %d/%d completed, lost tuners %s%s", time.monotonic() - started,
             result["completed"], settings.args.max_trials, result["lost_tuners"] or "none",
             ", deadline hit" if result["deadline_hit"] else "")
    storage.write_text(done_file, json.dumps(result, sort_keys=True))
    if oracle.abort_reason:
        raise StepFailed(f"search stopped: {oracle.abort_reason}")
    return result


def _listen(address: str, secret: str):
    import grpc

    # No SO_REUSEPORT: a second chief on the same port must fail, not split the workers.
    # Every call must carry the search secret (UNAUTHENTICATED otherwise).
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.so_reuseport", 0)],
                         interceptors=[oracle_auth.SecretCheck(secret)])
    try:
        bound = server.add_insecure_port(address)
    except RuntimeError:
        bound = 0
    if not bound:
        raise StepFailed(f"cannot listen on {address} (port in use?)")
    return server


def _serve(server, oracle, address: str, lease: float) -> None:
    from trainer.tuning.distributed.rpc import add_servicer

    add_servicer(server, oracle)
    server.start()
    log.info("serving trials on %s (lease %.0fs)", address, lease)
    tick = min(1.0, lease / 10)
    try:
        while not oracle.finished():
            time.sleep(tick)
            oracle.expire_leases()
    finally:
        server.stop(grace=1.0).wait()


def build_result(oracle, settings) -> dict:
    from trainer.tuning.distributed import records

    completed, incomplete = [], []
    for trial_id, trial in sorted(oracle.trials.items()):
        if trial_id in oracle.seeded:  # a previous run's: counted in warm_start, never in this run's top-N
            continue
        finisher = oracle.finished_by.get(trial_id)
        record = records.trial_record(trial, finisher or oracle.holder(trial_id),
                                      records.read_outcome(settings.tuning_dir, trial_id, finisher))
        if trial_id in oracle.pruning.pruned:  # also a pruned trial the chief ended itself
            record["pruned"] = oracle.pruning.pruned[trial_id]
        ok = trial.status == "COMPLETED" and record["objective"] is not None
        (completed if ok else incomplete).append(record)
    return {
        "trials": records.rank(completed, settings.direction),
        "completed": len(completed),
        "max_trials": settings.args.max_trials,
        "incomplete": incomplete,
        "lost_tuners": sorted(oracle.lost_tuners),
        "objective": settings.objective_dict(),
        "deadline_hit": bool(oracle.deadline_hit),
        "early_stopping": settings.early_stopping_why,
        "warm_start": oracle.warm_start,
    }
