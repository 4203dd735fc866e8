"""A local stand-in for TensorFlow Serving's REST API, built on KServe's V1 protocol.

Serves one model from a TF Serving model base path: integer version directories under
`{base}`, version labels (`stable`, `canary`, ...) from a JSON model config file, new
versions loaded in the background. See include/serving/README.md for the CLI, the config
file and the routes. Run with `PYTHONPATH=include/serving python -m tf_serving_rest ...`.
"""
