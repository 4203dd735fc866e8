"""Search algorithms: Keras Tuner `Oracle`s and the early-stopping rule, nothing else.

`gp_oracle` (the default, `gp`), `optuna_oracle` (`tpe`), `pruning` (early stopping across
tuners), `seeds` (independent random streams from one run seed) and `benchmarks` (the plain
functions the search is measured on). None of them knows how trials travel: the leases, the
gRPC and the steps wrap them from above (`trainer.tuning.distributed`, the step modules).
"""
