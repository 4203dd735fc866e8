"""Write every Kubernetes object the DAG would create for one run, and validate each one.

    PYTHONPATH=plugins .venv/airflow/bin/python scripts/render_k8s.py OUT [--conf '{"num_tuners": 4}']
                                                                       [--backend kubernetes|gke]

The DAG is parsed from dags/ (DagBag) with the chosen backend; each object is written to
OUT/<task>[-<map index>][-try<n>]-<kind>.yaml as the API server would receive it, and
validated with kubernetes-validate in strict mode against Kubernetes 1.30 and the newest
schema it ships. Exits 1 if any object is invalid. Needs no cluster and no metadata DB.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OLDEST_SUPPORTED = "1.30"


def _parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="directory for the YAML files (created, emptied of *.yaml)")
    parser.add_argument("--conf", default="{}", help="run conf as JSON, or @file.json (defaults: the DAG's params)")
    parser.add_argument("--backend", choices=("kubernetes", "gke"),
                        default=os.environ.get("TUNE_SERVE_BACKEND") if os.environ.get("TUNE_SERVE_BACKEND") in
                        ("kubernetes", "gke") else "kubernetes")
    parser.add_argument("--run-id", default="manual__2026-01-01T00:00:00+00:00")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    conf = json.loads(Path(args.conf[1:]).read_text() if args.conf.startswith("@") else args.conf)
    os.environ["TUNE_SERVE_BACKEND"] = args.backend
    os.environ.setdefault("TUNE_SERVE_NO_VARIABLES", "1")  # settings from the environment, no DB
    os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="render-k8s-"))
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    if args.backend == "gke":  # sample cluster coordinates unless configured
        os.environ.setdefault("TUNE_SERVE_GKE_LOCATION", "europe-west4")
        os.environ.setdefault("TUNE_SERVE_GKE_CLUSTER", "ml")
    sys.path.insert(0, str(REPO / "plugins"))

    import kubernetes_validate
    import yaml
    from airflow.dag_processing.dagbag import DagBag

    from tune_serve.kubernetes import render

    bag = DagBag(dag_folder=str(REPO / "dags" / "tune_train_serve.py"))
    if bag.import_errors:
        for path, error in bag.import_errors.items():
            print(f"{path}: {error}", file=sys.stderr)
        return 1
    objects = render.render_all(bag.dags["tune_train_serve"], conf, args.run_id)

    args.out.mkdir(parents=True, exist_ok=True)
    for stale in args.out.glob("*.yaml"):
        stale.unlink()
    versions = (OLDEST_SUPPORTED, kubernetes_validate.latest_version())
    invalid = 0
    for o in objects:
        (args.out / o.filename).write_text(yaml.safe_dump(o.manifest, sort_keys=False))
        for version in versions:
            try:
                kubernetes_validate.validate(o.manifest, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                invalid += 1
                where = ".".join(map(str, exc.path))
                print(f"INVALID {o.filename} (Kubernetes {version}): {where}: {exc.message}", file=sys.stderr)
    by_tag = sorted({c["image"] for o in objects for c in _containers(o.manifest) if "@sha256:" not in c["image"]})
    if by_tag:  # a tag can be moved under a running deployment; a digest cannot
        print(f"images by tag, not by digest: {', '.join(by_tag)} (pin them: TUNE_SERVE_TRAINER_IMAGE / "
              "TUNE_SERVE_SERVING_IMAGE=repository:tag@sha256:..., see README)", file=sys.stderr)
    print(f"{len(objects)} objects written to {args.out}, validated (strict) against Kubernetes "
          f"{' and '.join(versions)}: {'all valid' if not invalid else f'{invalid} errors'}")
    return 1 if invalid else 0


def _containers(manifest: dict) -> list[dict]:
    spec = manifest.get("spec") or {}
    pod = (spec.get("template") or {}).get("spec") if "template" in spec else spec
    return list((pod or {}).get("containers") or [])


if __name__ == "__main__":
    sys.exit(main())
