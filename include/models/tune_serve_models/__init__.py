"""Keras model builders shipped with tune_serve, each following the model contract
(docs/contracts.md, "Model contract"): `build(hp, spec, task) -> keras.Model`.

- `tabular:build`: the built-in model (the default of the `model` run parameter);
- `wide_and_deep:build`: a wide (crossed categorical features) and deep model.

A model imports from the trainer only the model SDK, `trainer.sdk` (FeatureSpec, heads,
declare, BadInput). Your own models go beside this package in the models folder (include/models, /opt/models
in the trainer image), e.g. include/models/my_models/churn.py → `my_models.churn:build`.
"""
