"""The distributed wire around Keras Tuner's gRPC: the chief's leased oracle (`oracles`), the
RPC with the caller named (`rpc`) and its secret (`oracle_auth`), the worker's leased tuner
(`worker`), per-trial progress (`resume`) and the trial records the workflow reads (`records`).
Any algorithm of `trainer.tuning.algorithms` runs behind it unchanged.
"""
