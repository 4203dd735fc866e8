"""Code that runs inside every pod of the tune_train_serve workflow. Never imports Airflow."""
