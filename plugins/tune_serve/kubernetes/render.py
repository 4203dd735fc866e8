"""Every Kubernetes object the DAG would create for one run, rendered without a cluster.

The operators come from the real DAG (built with backend kubernetes/gke); their XCom inputs
(the run plan, the chief's address, the leaderboard, the trained models) are filled with
what `tune_serve.workflow.plan` computes from the run's conf and with sample upstream results,
templates are rendered as for a task instance, then each operator builds its object
(`build_pod_request_obj(dry_run=True)`, the chief's Secret, Job, Service and NetworkPolicy,
TF Serving's objects).
Used by scripts/render_k8s.py and the tests.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any, cast

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
from kubernetes.client import ApiClient

from tune_contract.enums import CANARY, STABLE
from tune_contract.results import RankedTrial, TrainResult
from tune_serve import config
from tune_serve.kubernetes import manifests, serving_manifests
from tune_serve.kubernetes import settings as cluster_settings
from tune_serve.kubernetes.oracle import KubernetesStartOracleOperator, oracle_names
from tune_serve.workflow import plan as planning

SAMPLE_RUN_ID = "manual__2026-01-01T00:00:00+00:00"


@dataclass
class Rendered:
    manifest: dict            # camelCase, as the API server receives it
    task_id: str | None = None
    map_index: int = -1
    try_number: int = 1

    @property
    def kind(self) -> str:
        return self.manifest["kind"]

    @property
    def name(self) -> str:
        return self.manifest["metadata"]["name"]

    @property
    def filename(self) -> str:
        index = f"-{self.map_index}" if self.map_index >= 0 else ""
        attempt = f"-try{self.try_number}" if self.try_number > 1 else ""
        if self.task_id is None:  # cluster setup (RBAC), named by its own name
            return f"setup-{self.kind.lower()}-{self.name}.yaml"
        # not the object's name: pod names carry a random suffix
        return f"{self.task_id.replace('.', '-')}{index}{attempt}-{self.kind.lower()}.yaml"


def run_conf(dag, overrides: dict | None = None) -> dict:
    """The DAG's parameter defaults with `overrides`, as a triggered run would get them."""
    conf = {name: copy.deepcopy(param.value) for name, param in dag.params.items()}
    conf.update(overrides or {})
    return conf


def sample_upstream(plan: planning.Plan, address: str) -> dict[str, Any]:
    """What the argument-building tasks return, from the plan and sample results."""
    top: list[RankedTrial] = [{"rank": r, "trial_id": f"{r:04d}",
                               "hyperparameters": {"units": 64 * r, "learning_rate": 0.001},
                               "objective": 0.1 * r} for r in range(1, plan["top_n"] + 1)]
    trained: list[TrainResult] = [{"rank": t["rank"],
                                   "model_path": f"{plan['run_root']}/models/{t['rank']}/saved_model"}
                                  for t in top]
    return {
        "tuner_arguments": planning.tuner_arguments(plan, address),
        "training_arguments": planning.training_arguments(plan, top),
        "evaluation_arguments": planning.evaluation_arguments(
            plan, trained, f"{plan['run_root']}/../../serving/{plan['model_name']}/1"),
    }


def render_run(dag, conf: dict, run_id: str = SAMPLE_RUN_ID,
               retries_of: tuple[str, ...] = ("tune",)) -> list[Rendered]:
    """All objects of one run; tasks whose id ends in one of `retries_of` also at try 2."""
    plan = planning.build_plan(conf, run_id)
    address = "oracle:8000"
    objects: list[Rendered] = []
    for task in dag.tasks:
        if isinstance(task, KubernetesStartOracleOperator):
            op = _offline(_fresh(task, oracle_args=plan["oracle"]))
            context = _context(dag, op, run_id, conf)
            op.render_template_fields(context)
            objects += [Rendered(manifest, task.task_id) for manifest in op.render(context)]
            names = oracle_names(dag.dag_id, run_id)
            address = f"{names['service']}.{op.namespace}.svc.cluster.local:{op.oracle_port}"
    upstream = sample_upstream(plan, address)
    for task in dag.tasks:
        operator_class = getattr(task, "operator_class", type(task))
        if not (isinstance(operator_class, type) and issubclass(operator_class, KubernetesPodOperator)):
            continue
        if isinstance(task, KubernetesStartOracleOperator):
            continue
        tries = (1, 2) if task.task_id.split(".")[-1] in retries_of else (1,)
        if operator_class is type(task):  # a plain task: its arguments come from the plan
            for attempt in tries:
                op = _fresh(task, arguments=_plan_arguments(task, plan))
                objects.append(_render_pod(dag, op, run_id, conf, -1, attempt))
            continue
        for index, arguments in enumerate(_mapped_arguments(task, upstream)):
            for attempt in tries:
                op = task.unmap({"arguments": arguments})
                objects.append(_render_pod(dag, op, run_id, conf, index, attempt))
    return objects


def render_serving(model_name: str, base_path: str) -> list[Rendered]:
    """TF Serving's objects as a deployment leaves them mid-canary (stable 1, canary 2)."""
    state = serving_manifests.ServingState(base_path, (1, 2), {STABLE: 1, CANARY: 2})
    return [Rendered(m, "serving.deploy_serving") for m in serving_manifests.render(model_name, state)]


def render_rbac() -> list[Rendered]:
    """The cluster setup (README, step 3): the namespace under Pod Security `restricted`, RBAC."""
    namespace = cluster_settings.load().namespace
    ns = manifests.load("namespace.yaml")
    ns["metadata"]["name"] = namespace
    objects = [Rendered(ns)]
    for manifest in manifests.load_all("rbac.yaml"):
        manifest["metadata"]["namespace"] = namespace
        for subject in manifest.get("subjects", []):
            subject["namespace"] = namespace
        objects.append(Rendered(manifest))
    return objects


def render_all(dag, conf_overrides: dict | None = None, run_id: str = SAMPLE_RUN_ID) -> list[Rendered]:
    conf = run_conf(dag, conf_overrides)
    plan = planning.build_plan(conf, run_id)
    return [*render_rbac(), *render_run(dag, conf, run_id),
            *render_serving(plan["model_name"], f"{config.serving_root().rstrip('/')}/{plan['model_name']}")]


# ---- helpers --------------------------------------------------------------------------------

def _plan_arguments(task, plan: planning.Plan) -> list[str]:
    """A plain task's arguments: a list, or one entry of the plan (an XComArg with that key)."""
    arguments = task.arguments
    return arguments if isinstance(arguments, list) else cast(list[str], dict(plan)[arguments.key])


def _mapped_arguments(task, upstream: dict[str, Any]) -> list[list[str]]:
    """The argument lists a mapped pod task expands over: the output of its upstream @task."""
    source = task.expand_input.value["arguments"]
    producer = source.operator.task_id.split(".")[-1]
    if producer not in upstream:
        raise KeyError(f"{task.task_id} expands over {source.operator.task_id}; render.sample_upstream "
                       f"knows {sorted(upstream)}")
    return upstream[producer]


def _fresh(task, **overrides):
    op = copy.copy(task)
    for name, value in overrides.items():
        setattr(op, name, copy.deepcopy(value))
    return op


def _context(dag, task, run_id: str, conf: dict, map_index: int = -1, try_number: int = 1) -> dict:
    ti = SimpleNamespace(dag_id=dag.dag_id, task_id=task.task_id, run_id=run_id, map_index=map_index,
                         try_number=try_number)
    return {"dag": dag, "task": task, "ti": ti, "task_instance": ti, "run_id": run_id, "params": conf,
            "dag_run": SimpleNamespace(run_id=run_id, conf=conf), "ds": "2026-01-01"}


def _offline(op):
    """GKE operators look the cluster up through Google's API to build their hook; rendering
    needs only the XCom sidecar's defaults, which a connection-less KubernetesHook gives."""
    if hasattr(op, "cluster_name"):
        from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

        op.__dict__["hook"] = KubernetesHook(conn_id=None)
    return op


def _render_pod(dag, op, run_id: str, conf: dict, map_index: int, try_number: int) -> Rendered:
    _offline(op)
    context = _context(dag, op, run_id, conf, map_index, try_number)
    op.render_template_fields(context)
    pod = op.build_pod_request_obj(context, dry_run=True)
    return Rendered(ApiClient().sanitize_for_serialization(pod), op.task_id, map_index, try_number)
