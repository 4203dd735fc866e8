"""Benchmark 4: serving. Single-instance predict latency (p50, p99) and throughput of the local
TF Serving stand-in (`python -m tf_serving_rest`), one request at a time and at concurrency 8
for 10 s, beside the floor: the same SavedModel signature (`serving_default`) called in-process.

The SavedModel comes from `python -m trainer prepare` + `train` on a small diamonds sample
(trainer venv). This script runs in the serving venv: the load generator (httpx, one
keep-alive client per thread) shares the 2 cores with the server, as any local client would;
the floor runs after the server has stopped, in this process, with the same TensorFlow.
"""
from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from pathlib import Path

from common import (REPO, SERVING_PY, Workdir, emit, free_port, parse_args, percentile, r, run_step, wait_for)

MODEL = "diamonds"
CONCURRENCY = 8


def saved_model(workdir: Path) -> tuple[Path, dict]:
    run_root = workdir / "runs" / "bench"
    prepared = run_step("prepare", ["prepare", "--run-root", str(run_root), "--sample-rows", "2000", "--seed", "7"], workdir)
    trained = run_step("train", ["train", "--run-root", str(run_root), "--rank", "0", "--epochs", "2", "--seed", "1"], workdir)
    return Path(trained["model_path"]), prepared["sample_instance"]


def load(call, seconds: float, threads: int) -> dict:
    """Run `call()` from `threads` threads for `seconds`: latencies (ms) and calls per second."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads
    stop = time.monotonic() + seconds

    def worker(i: int) -> None:
        session = call()  # a per-thread callable (its own HTTP connection)
        while time.monotonic() < stop:
            t = time.perf_counter()
            try:
                session()
            except Exception:
                errors[i] += 1
                continue
            latencies[i].append((time.perf_counter() - t) * 1000)

    started = time.monotonic()
    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    elapsed = time.monotonic() - started
    flat = [x for xs in latencies for x in xs]
    return {"requests": len(flat), "errors": sum(errors), "throughput_per_s": r(len(flat) / elapsed, 1),
            "p50_ms": r(percentile(flat, 50), 2), "p99_ms": r(percentile(flat, 99), 2)}


def measure_server(model_path: Path, instance: dict, workdir: Path, seconds: float, seq_seconds: float) -> dict:
    import httpx

    base = workdir / "serving" / MODEL
    shutil.copytree(model_path, base / "1")
    port = free_port()
    log = open(workdir / "server.log", "wb")
    server = subprocess.Popen([SERVING_PY, "-m", "tf_serving_rest", "--model-name", MODEL, "--model-base-path", str(base),
                               "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                              env={"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "TF_CPP_MIN_LOG_LEVEL": "3",
                                   "PYTHONPATH": str(REPO / "include" / "serving")})
    url = f"http://127.0.0.1:{port}/v1/models/{MODEL}"
    body = {"instances": [instance]}  # serving_default, as every client sends it
    try:
        def available():
            if server.poll() is not None:
                raise RuntimeError(f"server exited {server.returncode}: {(workdir / 'server.log').read_text()[-2000:]}")
            try:
                states = httpx.get(url, timeout=2).json()["model_version_status"]
            except httpx.TransportError:
                return False
            return any(s["state"] == "AVAILABLE" for s in states)

        wait_for(available, 180, "the model to be AVAILABLE", interval=0.2)

        def session():
            client = httpx.Client(timeout=30)

            def call():
                response = client.post(f"{url}:predict", json=body)
                response.raise_for_status()
                return response.json()["predictions"]
            return call

        prediction = session()()
        load(session, 1.0, CONCURRENCY)  # warm-up: connections, first-call paths
        return {"prediction": prediction, "sequential": load(session, seq_seconds, 1),
                "concurrent": load(session, seconds, CONCURRENCY)}
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


def measure_floor(model_path: Path, instance: dict, seconds: float, seq_seconds: float) -> dict:
    import tensorflow as tf

    signature = tf.saved_model.load(str(model_path)).signatures["serving_default"]
    keys = signature._arg_keywords  # the SignatureDef's input keys, in the order of its inputs
    tensors = {k: tf.constant([instance[k]], dtype=t.dtype) for k, t in zip(keys, signature.inputs)}

    def session():
        return lambda: [v.numpy() for v in signature(**tensors).values()]

    prediction = session()()[0].tolist()
    load(session, 1.0, CONCURRENCY)
    return {"prediction": prediction, "sequential": load(session, seq_seconds, 1),
            "concurrent": load(session, seconds, CONCURRENCY)}


def main() -> None:
    args = parse_args(__doc__)
    seconds, seq_seconds = (3.0, 2.0) if args.quick else (10.0, 5.0)
    with Workdir(args.workdir, "serving") as workdir:
        model_path, instance = saved_model(workdir)
        server = measure_server(model_path, instance, workdir, seconds, seq_seconds)
        floor = measure_floor(model_path, instance, seconds, seq_seconds)
    ratios = {
        "sequential_p50": r(server["sequential"]["p50_ms"] / floor["sequential"]["p50_ms"], 1),
        "sequential_p99": r(server["sequential"]["p99_ms"] / floor["sequential"]["p99_ms"], 1),
        "concurrent_p50": r(server["concurrent"]["p50_ms"] / floor["concurrent"]["p50_ms"], 1),
        "concurrent_p99": r(server["concurrent"]["p99_ms"] / floor["concurrent"]["p99_ms"], 1),
        "throughput_floor_over_server": r(floor["concurrent"]["throughput_per_s"] / server["concurrent"]["throughput_per_s"], 1),
    }
    print(f"Serving one instance ({seconds:.0f}s at concurrency {CONCURRENCY}, {seq_seconds:.0f}s one at a time):")
    print(f"  {'':22s} {'p50 ms':>8s} {'p99 ms':>8s} {'req/s':>9s}")
    for name, m in (("server, sequential", server["sequential"]), ("in-process, sequential", floor["sequential"]),
                    (f"server, conc. {CONCURRENCY}", server["concurrent"]), (f"in-process, conc. {CONCURRENCY}", floor["concurrent"])):
        print(f"  {name:22s} {m['p50_ms']:8.2f} {m['p99_ms']:8.2f} {m['throughput_per_s']:9.1f}")
    print(f"  ratios server/in-process: {json.dumps(ratios)}")
    emit("serving", {"quick": args.quick, "concurrency": CONCURRENCY, "seconds": seconds,
                     "sequential_seconds": seq_seconds, "instance": instance, "server": server, "in_process": floor,
                     "ratios": ratios}, args.out)


if __name__ == "__main__":
    main()
