"""The one contract between the Airflow side and the trainer pods (docs/contracts.md).

Standard library only, so the Airflow, trainer and serving environments all import it:

- `enums`        every closed set of names both sides use (algorithms, objectives, steps…);
- `layout`       where a run's files live under `{run_root}`;
- `search_space` the search-space schema and its validator, run by `validate_params` and by
                 the trainer alike;
- `steps`        one dataclass per trainer step holding its flags: `to_argv()` on the Airflow
                 side, `from_args()` in the trainer;
- `results`      `TypedDict`s of each step's JSON result and of a trial;
- `errors`       `BadInput`, the error both sides report as `<field>: <reason>`.
"""
