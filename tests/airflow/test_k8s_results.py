"""Issue 21, finding 7: Airflow's Role held `pods/exec` only to read KubernetesPodOperator's
XCom sidecar, and exec into a pod reads every Secret that pod mounts (the chief's search secret
in a tuner). A pod task's step now writes its result JSON under the run root and the operator
reads it from storage: no sidecar, no exec, and the Role says exactly what it grants."""
from __future__ import annotations

import json
from unittest import mock

import pytest
from k8s_testing import cluster_backend, load_dag

from tune_serve.kubernetes import manifests, render
from tune_serve.kubernetes.operators import KubernetesTrainerPodOperator
from tune_serve.kubernetes.results import result_uri
from tune_serve.workflow.preemption import PodFailed

# Every (apiGroup, resource) the Role grants and its exact verbs, written out: widening the
# Role (a verb, a resource, pods/exec back) fails here first.
ROLE = {
    ("", "pods"): ["create", "get", "list", "watch", "patch", "delete"],
    ("", "pods/log"): ["get"],
    ("", "events"): ["get", "list", "watch"],
    ("events.k8s.io", "events"): ["get", "list", "watch"],
    ("", "services"): ["create", "get", "delete"],
    ("", "secrets"): ["create"],
    ("networking.k8s.io", "networkpolicies"): ["create"],
    ("", "configmaps"): ["create", "get", "list", "delete"],
    ("batch", "jobs"): ["create", "get", "list", "watch", "delete"],
    ("batch", "jobs/status"): ["create", "get", "list", "watch", "delete"],
    ("apps", "deployments"): ["create", "get", "patch", "delete"],
    ("apps", "deployments/status"): ["create", "get", "patch", "delete"],
    ("coordination.k8s.io", "leases"): ["create", "get", "update", "delete"],
}
CONF = {"num_tuners": 2, "top_n": 2, "max_trials": 4, "model_name": "diamonds"}


def test_the_role_grants_exactly_these_verbs():
    (role,) = [m for m in manifests.load_all("rbac.yaml") if m["kind"] == "Role"]
    granted: dict[tuple[str, str], list[str]] = {}
    for rule in role["rules"]:
        assert set(rule) == {"apiGroups", "resources", "verbs"}, rule  # no resourceNames, no nonResourceURLs
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                assert (group, resource) not in granted, f"{group}/{resource} granted twice"
                granted[(group, resource)] = rule["verbs"]
    assert granted == ROLE
    assert ("", "pods/exec") not in granted and ("", "pods/attach") not in granted


@pytest.fixture(scope="module")
def pods():
    dag = load_dag("kubernetes")
    with cluster_backend("kubernetes"):
        return [o for o in render.render_all(dag, CONF) if o.kind == "Pod"]


def test_pod_tasks_have_no_xcom_sidecar_and_write_their_result_under_the_run_root(pods):
    assert {p.task_id.split(".")[-1] for p in pods} == {"prepare_data", "tune", "train", "evaluate"}
    for p in pods:
        spec = p.manifest["spec"]
        (base,) = spec["containers"]  # the trainer alone: no airflow-xcom-sidecar (alpine), nothing to exec into
        assert not any(v["name"] == "xcom" for v in spec.get("volumes", []))
        env = {e["name"]: e.get("value") for e in base["env"]}
        run_root = next(a.split("=", 1)[1] for a in base["args"] if a.startswith("--run-root="))
        assert env["TRAINER_XCOM_FILE"] == result_uri(run_root, p.task_id, p.map_index, p.try_number), p.filename


def test_result_files_are_distinct_per_task_map_index_and_try():
    root = "gs://b/storage/runs/r"
    assert result_uri(root, "prepare_data", -1, 1) == f"{root}/results/prepare_data/try-1.json"
    assert result_uri(root + "/", "tuning.tune", 3, 2) == f"{root}/results/tuning.tune/3/try-2.json"


def test_dag_pod_tasks_never_push_through_the_sidecar():
    dag = load_dag("kubernetes")
    assert dag.get_task("prepare_data").do_xcom_push is False
    assert dag.get_task("tuning.tune").partial_kwargs["do_xcom_push"] is False


# ---- the operator: the pod's result read from storage, pushed as the task's return value ----

def _operator(tmp_path):
    op = KubernetesTrainerPodOperator(task_id="train", name="train", namespace="tune-serve", image="x",
                            arguments=[f"--run-root={tmp_path}/runs/r", "--rank=1"], do_xcom_push=False)
    ti = mock.MagicMock(task_id="train", map_index=0, try_number=2)
    return op, {"ti": ti}


def test_a_succeeded_pod_s_result_is_read_from_storage_and_pushed(tmp_path):
    op, context = _operator(tmp_path)
    uri = result_uri(f"{tmp_path}/runs/r", "train", 0, 2)
    (tmp_path / "runs/r/results/train/0").mkdir(parents=True)
    (tmp_path / "runs/r/results/train/0/try-2.json").write_text(json.dumps({"rank": 1, "model_path": "m"}))
    with mock.patch("airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator.execute",
                    return_value=None) as execute:
        assert op.execute(context) == {"rank": 1, "model_path": "m"}
    execute.assert_called_once()
    context["ti"].xcom_push.assert_called_once_with(key="return_value", value={"rank": 1, "model_path": "m"})
    assert uri.endswith("results/train/0/try-2.json")


def test_a_deferred_pod_s_result_is_read_after_it_resumes(tmp_path):
    op, context = _operator(tmp_path)
    (tmp_path / "runs/r/results/train/0").mkdir(parents=True)
    (tmp_path / "runs/r/results/train/0/try-2.json").write_text('{"rank": 1}')
    with mock.patch("airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator.trigger_reentry",
                    return_value=None):
        assert op.trigger_reentry(context, {"name": "train-x", "namespace": "tune-serve", "status": "success"}) \
            == {"rank": 1}


def test_a_succeeded_pod_without_a_result_fails_the_task(tmp_path):
    op, context = _operator(tmp_path)
    with mock.patch("airflow.providers.cncf.kubernetes.operators.pod.KubernetesPodOperator.execute",
                    return_value=None):
        with pytest.raises(PodFailed, match="no result at .*try-2.json"):
            op.execute(context)
    context["ti"].xcom_push.assert_not_called()
