"""Airflow-side package of the tune_train_serve workflow: pod tasks and their backends,
top-N aggregation, serving deployment, run parameters. Never imports TensorFlow."""
