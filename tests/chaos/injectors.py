"""Fault injectors: each waits for a chosen moment in stored state, injects, and returns what it
saw (the facts the tests check the outcome against). They run in threads next to the run."""
from __future__ import annotations

import time

from chaos_helpers import Pods, kill_pod, oracle_state, read_json, wait_for


def _trial_dir(run_root, trial_id):
    return run_root / "tuning" / f"trial_{trial_id}" / "resume" / "execution_0"


def kill_tuner_mid_trial(stack, run, try_number: int = 1, timeout: float = 900) -> dict:
    """SIGKILL (whole process group: the node is gone) a tuner whose trial has finished at least
    one epoch, i.e. its per-epoch backup claims epoch >= 1, while the trial is still running."""
    root = stack.run_root(run.run_id)

    def moment():
        state = oracle_state(root)
        for tuner_id, trial_id in sorted((state.get("ongoing_trials") or {}).items()):
            backup = read_json(_trial_dir(root, trial_id) / "backup" / "training_metadata.json") or {}
            index = int(tuner_id.rsplit("-", 1)[1])
            directory = stack.pods.try_dir(run.run_id, "tuning.tune", index, try_number)
            if backup.get("epoch", 0) >= 1 and Pods.running(directory):
                return tuner_id, trial_id, index, directory
        return None

    tuner_id, trial_id, index, directory = wait_for(moment, timeout, f"{run.run_id}: a trial past its first epoch")
    fact = kill_pod(directory, whole_group=True)
    # Read after the kill: the process is dead, so this is exactly what the retry can resume from.
    epochs = (read_json(_trial_dir(root, trial_id) / "epochs.json") or {}).get("epochs", {})
    backup = read_json(_trial_dir(root, trial_id) / "backup" / "training_metadata.json") or {}
    fact.update(kind="tuner", tuner_id=tuner_id, trial_id=trial_id, map_index=index, try_number=try_number,
                epochs_done=len(epochs), backed_up_epoch=backup.get("epoch", 0),
                ended_before_kill=trial_id in oracle_state(root).get("end_order", []))
    run.faults.append(fact)
    return fact


def kill_tuner_retry_at_start(stack, run, index: int, try_number: int, timeout: float = 600) -> dict:
    """SIGKILL a tuner's retry as soon as its process exists: the node pool keeps failing it."""
    directory = stack.pods.try_dir(run.run_id, "tuning.tune", index, try_number)
    wait_for(lambda: Pods.running(directory), timeout, f"{run.run_id}: tuner {index} try {try_number} to start",
             interval=0.02)
    fact = kill_pod(directory, whole_group=True)
    fact.update(kind="tuner", map_index=index, try_number=try_number)
    run.faults.append(fact)
    return fact


def kill_training_mid_way(stack, run, rank: int = 0, timeout: float = 900) -> dict:
    """SIGKILL the training program (not its wrapper: the pod records exit 137, as after an OOM
    kill) once its checkpoint claims epoch >= 1 and training is not over."""
    checkpoints = stack.run_root(run.run_id) / "models" / str(rank) / "checkpoints"
    directory = stack.pods.try_dir(run.run_id, "training.train", rank, 1)

    def moment():
        backup = read_json(checkpoints / "latest" / "training_metadata.json") or {}
        return backup.get("epoch", 0) >= 1 and Pods.running(directory)

    wait_for(moment, timeout, f"{run.run_id}: training rank {rank} past its first epoch", interval=0.02)
    fact = kill_pod(directory, whole_group=False)
    stopping = read_json(checkpoints / "early_stopping.json") or {}
    backup = read_json(checkpoints / "latest" / "training_metadata.json") or {}
    fact.update(kind="train", rank=rank, epochs_done=stopping.get("epochs_completed", 0),
                backed_up_epoch=backup.get("epoch", 0))
    run.faults.append(fact)
    return fact


def kill_chief_mid_search(stack, run, timeout: float = 900) -> dict:
    """SIGKILL the Keras Tuner chief once a trial has ended and others are still running."""
    root = stack.run_root(run.run_id)
    chief = stack.pods.chief(run.run_id)

    def moment():
        state = oracle_state(root)
        return bool(state.get("end_order")) and bool(state.get("ongoing_trials")) and Pods.running(chief)

    wait_for(moment, timeout, f"{run.run_id}: a search with ended and running trials")
    fact = kill_pod(chief, whole_group=True)
    state = oracle_state(root)
    fact.update(kind="chief", ended=list(state.get("end_order", [])), running=dict(state.get("ongoing_trials", {})))
    run.faults.append(fact)
    return fact


def _default_route_serves(base_url: str, model_name: str, instance: dict) -> bool:
    import httpx

    try:
        return httpx.post(f"{base_url}/v1/models/{model_name}:predict", json={"instances": [instance]},
                          timeout=10).status_code == 200
    except httpx.HTTPError:
        return False


def stream_through_switch(stack, run, model_name: str, timeout: float = 1800, after: int = 20) -> dict:
    """Keep a prediction stream on the model's default route from the moment its first version
    serves until `after` answers have come back after a second version replaced it."""
    from chaos_helpers import PredictionStream, labels, serving_port

    first = wait_for(lambda: labels(stack.serving, model_name).get("stable"), timeout,
                     f"a first version of {model_name}", interval=0.02)
    instance = run.xcom("prepare_data")["sample_instance"]
    base_url = f"http://127.0.0.1:{serving_port(stack.serving, model_name)}"
    # The label is in the config file a moment before the server (polling it, as TF Serving
    # does) routes it; the deploy itself waits for that, and so does traffic here.
    wait_for(lambda: _default_route_serves(base_url, model_name, instance), 120,
             f"the default route of {model_name}", interval=0.02)
    stream = PredictionStream(base_url, model_name, instance)
    stream.start()
    fact = {"kind": "stream", "model_name": model_name, "first": first, "stream": stream, "base_url": base_url,
            "instance": instance, "started": time.time()}
    run.faults.append(fact)
    try:
        second = wait_for(lambda: (labels(stack.serving, model_name).get("stable") or first) != first and
                          labels(stack.serving, model_name)["stable"], timeout, f"a second version of {model_name}")
        from tune_serve.serving.rest_client import TFServingREST

        with TFServingREST(base_url, model_name) as server:  # the server itself has moved its default route
            wait_for(lambda: int((server.version_status(label="stable") or {}).get("version", 0)) == second, 300,
                     f"the server to serve version {second} of {model_name} by default", interval=0.2)
        fact.update(second=second, switched_at=time.time())
        wait_for(lambda: sum(1 for r in stream.responses if r[0] > fact["switched_at"]) >= after, 300,
                 f"{after} predictions after the switch")
    finally:
        stream.stop()
    return fact
