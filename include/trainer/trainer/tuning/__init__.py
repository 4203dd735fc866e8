"""Distributed hyperparameter search on Keras Tuner: the `oracle` (chief) and `tune` (worker) steps.

What this package adds to Keras Tuner 1.4.8's gRPC distribution:

- the search space is data (`search_space`), validated before anything trains;
- a trial interrupted by SIGKILL resumes from its last completed epoch (`resume`);
- a worker that stops reporting loses its trial to another worker after a lease, and
  the chief stops at a deadline (`oracles`, `rpc`);
- a restarted chief keeps running trials assigned to their workers (`oracles`);
- benchmark objectives (Branin, sleep) run through the same path (`benchmarks`).

Nothing here imports TensorFlow or Keras Tuner at module level, so `--help` and input
validation stay fast.
"""
