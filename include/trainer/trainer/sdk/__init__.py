"""The model SDK: everything a model builder needs from the trainer, and nothing else.

A model (the model contract, docs/contracts.md) is

    build(hp: keras_tuner.HyperParameters, spec: trainer.sdk.FeatureSpec, task: str) -> keras.Model

and imports from the trainer only this package:

- `FeatureSpec` (`trainer.sdk.featurespec`): the run's features, their statistics and
  vocabularies, the label and the task; `spec.keras_key(name)` names each `keras.Input`;
- `heads` (`trainer.sdk.heads`): `heads.output(x, spec, task)`, the task's output layer, and
  `heads.compile_for_task(model, task, learning_rate)`, what the trainer calls on a model
  returned uncompiled;
- `declare(hp, parameter, default)` (`trainer.sdk.space`): a parameter of a declarative search
  space (`tune_contract.search_space.Parameter`) declared on `hp`;
- `BadInput(field, reason)`: a model's own refusal, reported as one line naming the field.

Rules (tests/airflow/test_layers.py): the SDK imports only itself, `tune_contract` and the
standard library (Keras inside functions), never the trainer's steps nor any model, so a
model importing it can never import itself back. The trainer finds every model, the built-in
`tune_serve_models.tabular:build` included, only by its name (`trainer.user_model.load`).
`trainer.heads` and `trainer.featurespec.FeatureSpec`, the names models imported before the SDK,
still work.
"""
from tune_contract.errors import BadInput

from trainer.sdk import heads
from trainer.sdk.featurespec import FeatureSpec
from trainer.sdk.space import declare

__all__ = ["BadInput", "FeatureSpec", "declare", "heads"]
