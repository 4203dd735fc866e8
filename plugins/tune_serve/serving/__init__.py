"""What both platforms' serving share: the version publisher (`publisher`: decision, provenance,
labels, result), the deploy decision and the result's shape (`deploy_decision`), the version's
provenance (`provenance`), the REST client (`rest_client`) and the errors. Each platform deploys in
its own package (`tune_serve.local.serving`, `tune_serve.kubernetes.serving`); the DAG reaches
them through `tune_serve.workflow.backend.current()`. Never imports TensorFlow.
"""
