"""Airflow-side package of the tune_train_serve workflow. Never imports TensorFlow.

Wings (docs/architecture.md; tests/airflow/test_layers.py keeps every arrow pointing down):
- this package's modules (`config`, `errors`, `storage`, `client`): the base every wing uses;
- `serving/`: what both platforms' serving share (the deploy decision, provenance, REST);
- `workflow/`: what the DAG does: run parameters, the plan, pod specs, the backend Protocol,
  the leaderboard, summaries, the run note, failures, the preemption rule;
- `local/`, `kubernetes/`: the two platforms, each implementing `workflow.backend.Backend`;
- `web/`: every HTTP surface added to Airflow's API server, and the note listener.
"""
