"""Distributed hyperparameter search on Keras Tuner: the `oracle` (chief) and `tune` (worker) steps.

What this package adds to Keras Tuner 1.4.8's gRPC distribution:

- the search space is data (`search_space`), validated before anything trains;
- a trial interrupted by SIGKILL resumes from its last completed epoch (`distributed.resume`);
- a worker that stops reporting loses its trial to another worker after a lease, and
  the chief stops at a deadline (`distributed.oracles`, `distributed.rpc`);
- a restarted chief keeps running trials assigned to their workers (`distributed.oracles`);
- benchmark objectives (Branin, sleep) run through the same path (`algorithms.benchmarks`).

Three layers (docs/architecture.md; tests/airflow/test_layers.py keeps them):
- `algorithms/`: the search algorithms, Keras Tuner Oracles that know nothing of the wire;
- `distributed/`: leases, gRPC, resumable trials, the trial records;
- this package's modules: the steps (`oracle_step`, `tune_step`, `objective_step`), their
  settings, the warm start and the tuners of a Keras model or a benchmark function.

Nothing here imports TensorFlow or Keras Tuner at module level, so `--help` and input
validation stay fast.
"""
