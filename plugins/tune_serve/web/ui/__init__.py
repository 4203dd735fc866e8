"""The tune_serve view in the Airflow UI: per run, every trial, the plots, the candidates, what shipped."""
