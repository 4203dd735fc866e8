"""Every Kubernetes object the DAG creates on a cluster, rendered from the real DAG and
validated against the Kubernetes API schema, with the rules asserted on."""
from collections import defaultdict

import kubernetes_validate
import pytest
from k8s_testing import cluster_backend, load_dag

from tune_contract.steps import OracleArgs, TuneArgs
from tune_serve.kubernetes import render
from tune_serve.workflow.preemption import PodPreempted

CONF = {"num_tuners": 3, "top_n": 2, "max_trials": 6, "model_name": "diamonds"}
SCHEMAS = ("1.30", kubernetes_validate.latest_version())


@pytest.fixture(scope="module")
def dag():
    return load_dag("kubernetes")


@pytest.fixture(scope="module")
def objects(dag):
    with cluster_backend("kubernetes"):
        return render.render_all(dag, CONF)


@pytest.fixture(scope="module")
def pods(objects):
    by_task = defaultdict(list)
    for o in objects:
        if o.kind == "Pod":
            by_task[o.task_id.split(".")[-1]].append(o)
    return by_task


def _containers(manifest):
    spec = manifest["spec"]["template"]["spec"] if manifest["kind"] in ("Job", "Deployment") else manifest["spec"]
    return spec, spec["containers"]


@pytest.mark.parametrize("version", SCHEMAS)
def test_every_object_is_valid_in_strict_mode(objects, version):
    for o in objects:
        kubernetes_validate.validate(o.manifest, version, strict=True)


def test_the_run_creates_what_the_design_says(objects, pods):
    kinds = {(o.task_id, o.kind) for o in objects}
    assert {("tuning.start_oracle", "Job"), ("tuning.start_oracle", "Service"), ("tuning.start_oracle", "Secret"),
            ("tuning.start_oracle", "NetworkPolicy"), ("serving.deploy_serving", "Deployment"),
            ("serving.deploy_serving", "Service"), ("serving.deploy_serving", "ConfigMap")} <= kinds
    assert len([p for p in pods["tune"] if p.try_number == 1]) == CONF["num_tuners"]
    assert len(pods["train"]) == len(pods["evaluate"]) == CONF["top_n"]
    assert len(pods["prepare_data"]) == 1


def test_gpus_and_spot_scheduling_only_where_they_belong(pods):
    for p in pods["tune"]:
        spec, (base, *_) = _containers(p.manifest)
        assert base["resources"]["limits"]["nvidia.com/gpu"] == "1"
        assert spec["nodeSelector"] == {"cloud.google.com/gke-spot": "true"}
        keys = {t["key"] for t in spec["tolerations"]}
        assert keys == {"cloud.google.com/gke-spot", "nvidia.com/gpu"}
    for p in pods["train"]:
        spec, (base, *_) = _containers(p.manifest)
        assert base["resources"]["limits"]["nvidia.com/gpu"] == "2"  # default training GPUs
        assert [t["key"] for t in spec["tolerations"]] == ["nvidia.com/gpu"]
        assert "cloud.google.com/gke-spot" not in spec["nodeSelector"]
        assert _keeps_off_spot(spec)
    for p in pods["evaluate"] + pods["prepare_data"]:
        spec, (base, *_) = _containers(p.manifest)
        assert "nvidia.com/gpu" not in base["resources"].get("limits", {})
        assert "nvidia.com/gpu" not in base["resources"].get("requests", {})
        assert not spec.get("tolerations") and not spec.get("nodeSelector")
        assert _keeps_off_spot(spec)


def _keeps_off_spot(spec) -> bool:
    terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    return {"key": "cloud.google.com/gke-spot", "operator": "NotIn", "values": ["true"]} in terms[0]["matchExpressions"]


def test_nothing_runs_as_root_or_can_escalate(objects):
    for o in objects:
        if o.kind not in ("Pod", "Job", "Deployment"):
            continue
        spec, containers = _containers(o.manifest)
        assert spec["securityContext"]["runAsNonRoot"] is True, o.filename
        assert spec["securityContext"]["runAsUser"] != 0
        for c in containers:
            assert c["securityContext"]["allowPrivilegeEscalation"] is False, (o.filename, c["name"])
            assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert not c["securityContext"].get("privileged")


def _workloads(objects):
    return [o for o in objects if o.kind in ("Pod", "Job", "Deployment")]


def test_every_container_reserves_and_caps_its_local_disk(objects):
    workloads = _workloads(objects)
    assert {o.kind for o in workloads} == {"Pod", "Job", "Deployment"}
    for o in workloads:
        spec, containers = _containers(o.manifest)
        assert len(containers) == 1, o.filename  # no XCom sidecar (test_k8s_results)
        for c in [*containers, *spec.get("initContainers", [])]:
            resources = c.get("resources") or {}
            assert "ephemeral-storage" in resources.get("requests", {}), (o.filename, c["name"])
            assert "ephemeral-storage" in resources.get("limits", {}), (o.filename, c["name"])
        for volume in spec.get("volumes", []):
            if "emptyDir" in volume:
                assert volume["emptyDir"].get("sizeLimit"), (o.filename, volume["name"])


# The Pod Security Standard "restricted" (kubernetes.io/docs/concepts/security/pod-security-standards).
_RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim",
                       "projected", "secret"}


def _restricted_violations(spec: dict) -> list[str]:
    found = [f"{key}" for key in ("hostNetwork", "hostPID", "hostIPC") if spec.get(key)]
    pod_sc = spec.get("securityContext") or {}
    found += [f"volume {v['name']}" for v in spec.get("volumes", []) if set(v) - {"name"} - _RESTRICTED_VOLUMES]
    for c in [*spec["containers"], *spec.get("initContainers", [])]:
        sc, name = c.get("securityContext") or {}, c["name"]
        if sc.get("privileged"):
            found.append(f"{name}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            found.append(f"{name}: allowPrivilegeEscalation")
        if "ALL" not in (sc.get("capabilities") or {}).get("drop", []):
            found.append(f"{name}: capabilities not dropped")
        if set((sc.get("capabilities") or {}).get("add", [])) - {"NET_BIND_SERVICE"}:
            found.append(f"{name}: capabilities added")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            found.append(f"{name}: runAsNonRoot")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            found.append(f"{name}: runAsUser 0")
        seccomp = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            found.append(f"{name}: seccompProfile")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            found.append(f"{name}: hostPort")
        if sc.get("procMount", "Default") != "Default":
            found.append(f"{name}: procMount")
    return found


def test_the_namespace_enforces_restricted_and_every_pod_meets_it(objects):
    [namespace] = [o.manifest for o in objects if o.kind == "Namespace"]
    assert namespace["metadata"]["name"] == "tune-serve"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for o in _workloads(objects):
        spec, _ = _containers(o.manifest)
        assert _restricted_violations(spec) == [], o.filename


def _tuner_id(pod):
    _, (base, *_) = _containers(pod.manifest)
    flag = TuneArgs.from_argv(base["args"]).tuner_id
    env = {e["name"]: e["value"] for e in base["env"]}["KERASTUNER_TUNER_ID"]
    assert flag == env
    return flag


def test_tuner_ids_are_distinct_and_survive_retries(pods):
    by_index = defaultdict(set)
    for p in pods["tune"]:
        by_index[p.map_index].add(_tuner_id(p))
    assert all(len(ids) == 1 for ids in by_index.values())  # try 1 and try 2: the same id
    ids = [next(iter(v)) for v in by_index.values()]
    assert sorted(ids) == [f"tuner-{i}" for i in range(CONF["num_tuners"])]


def test_pods_carry_the_task_instance_labels_and_the_deadline(pods):
    for p in pods["tune"]:
        labels = p.manifest["metadata"]["labels"]
        assert labels["dag_id"] == "tune_train_serve" and labels["task_id"] == "tuning.tune"
        assert labels["map_index"] == str(p.map_index) and labels["run_id"]
        assert labels["app.kubernetes.io/component"] == "tune"
        # a backstop outlasting the longest search the form allows (the tuners stop at the run's own)
        assert p.manifest["spec"]["activeDeadlineSeconds"] == (7 * 24 + 1) * 3600
        _, (base, *_) = _containers(p.manifest)
        assert base["terminationMessagePolicy"] == "FallbackToLogsOnError"


def test_the_oracle_service_selects_the_chief_jobs_pod(objects):
    job = next(o.manifest for o in objects if o.kind == "Job")
    service = next(o.manifest for o in objects if o.kind == "Service" and o.task_id == "tuning.start_oracle")
    pod_labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["type"] == "ClusterIP"
    _, (base,) = _containers(job)
    assert [p["name"] for p in base["ports"]] == ["oracle"]
    assert service["spec"]["ports"][0]["targetPort"] == "oracle"
    assert job["spec"]["podFailurePolicy"]["rules"][0]["onPodConditions"][0]["type"] == "DisruptionTarget"
    assert OracleArgs.from_argv(base["args"]).xcom_file.endswith("/tuning/oracle_result.json")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"


def _secret_file(manifest) -> str | None:
    """Where the pod finds the run's search secret, checked to be the run's Secret mounted read-only."""
    spec, (base, *_) = _containers(manifest)
    env = {e["name"]: e.get("value") for e in base.get("env", [])}
    volumes = [v for v in spec.get("volumes", []) if "secret" in v]
    if "KERASTUNER_ORACLE_SECRET_FILE" not in env:
        assert not volumes, manifest["metadata"]
        return None
    (volume,) = volumes
    (mount,) = [m for m in base["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["readOnly"] is True and volume["secret"]["defaultMode"] == 0o440
    assert env["KERASTUNER_ORACLE_SECRET_FILE"] == f"{mount['mountPath']}/token"
    return volume["secret"]["secretName"]


def test_only_the_chief_and_the_tuners_get_the_search_secret(objects, pods):
    (secret,) = [o.manifest for o in objects if o.kind == "Secret"]
    job = next(o.manifest for o in objects if o.kind == "Job")
    assert _secret_file(job) == secret["metadata"]["name"]
    assert [_secret_file(p.manifest) for p in pods["tune"]] == [secret["metadata"]["name"]] * len(pods["tune"])
    for step in ("prepare_data", "train", "evaluate"):
        assert all(_secret_file(p.manifest) is None for p in pods[step]), step
    deployment = next(o.manifest for o in objects if o.kind == "Deployment")
    assert _secret_file(deployment) is None
    assert secret["stringData"] == {"token": "generated-by-start-oracle-for-each-run"}  # rendered: no real token
    assert secret["immutable"] is True


def test_the_network_policy_admits_only_the_runs_tuners_to_the_chiefs_port(dag, objects, pods):
    (policy,) = [o.manifest for o in objects if o.kind == "NetworkPolicy"]
    job = next(o.manifest for o in objects if o.kind == "Job")
    _, (base,) = _containers(job)
    chief_labels = job["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= chief_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": base["ports"][0]["containerPort"]}]
    (source,) = rule["from"]
    admitted = source["podSelector"]["matchLabels"]
    assert set(source) == {"podSelector"}  # no namespaceSelector/ipBlock: this namespace's pods only
    assert admitted["tune-serve/run"] == chief_labels["tune-serve/run"]
    for p in pods["tune"]:
        assert admitted.items() <= p.manifest["metadata"]["labels"].items()
    for step in ("prepare_data", "train", "evaluate"):
        assert not any(admitted.items() <= p.manifest["metadata"]["labels"].items() for p in pods[step]), step
    with cluster_backend("kubernetes"):  # another run's tuners are not admitted
        other_run = render.render_run(dag, render.run_conf(dag, CONF), "manual__other")
    assert not any(admitted.items() <= o.manifest["metadata"]["labels"].items()
                   for o in other_run if o.kind == "Pod")


def test_rbac_is_namespaced_and_minimal(objects):
    rbac = [o.manifest for o in objects if o.task_id is None and o.kind != "Namespace"]
    assert {m["kind"] for m in rbac} == {"ServiceAccount", "Role", "RoleBinding"}
    assert all(m["metadata"]["namespace"] == "tune-serve" for m in rbac)
    role = next(m for m in rbac if m["kind"] == "Role")
    granted = {(group, resource) for rule in role["rules"] for group in rule["apiGroups"] for resource in rule["resources"]}
    for rule in role["rules"]:
        assert "*" not in rule["verbs"] and "*" not in rule["resources"] and "*" not in rule["apiGroups"]
        assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])
    assert {("", "pods"), ("", "pods/log"), ("", "services"), ("batch", "jobs"),
            ("apps", "deployments"), ("", "configmaps")} <= granted
    assert not {r for _, r in granted} & {"nodes", "namespaces", "clusterroles", "rolebindings"}
    # The chief's search Secret and NetworkPolicy: created, never read (they go with the chief's Job)
    verbs = {(group, resource): rule["verbs"] for rule in role["rules"] for group in rule["apiGroups"]
             for resource in rule["resources"]}
    assert verbs[("", "secrets")] == ["create"] and verbs[("networking.k8s.io", "networkpolicies")] == ["create"]
    assert verbs[("coordination.k8s.io", "leases")] == ["create", "get", "update", "delete"]  # deploy Lease
    binding = next(m for m in rbac if m["kind"] == "RoleBinding")
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role["metadata"]["name"]}


def test_serving_probes_ask_tf_serving_for_the_model(objects):
    deployment = next(o.manifest for o in objects if o.kind == "Deployment")
    _, (container,) = _containers(deployment)
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert container[probe]["httpGet"] == {"path": "/v1/models/diamonds", "port": "rest"}
    assert {p["containerPort"] for p in container["ports"]} == {8500, 8501}
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    config = next(o.manifest for o in objects if o.kind == "ConfigMap")
    assert config["immutable"] is True
    text = config["data"]["models.config"]
    assert 'version_labels { key: "stable" value: 1 }' in text and 'version_labels { key: "canary" value: 2 }' in text
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    assert volume["configMap"]["name"] == config["metadata"]["name"]
    service = next(o.manifest for o in objects if o.kind == "Service" and o.task_id == "serving.deploy_serving")
    assert service["spec"]["selector"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_pod_tasks_retry_preemptions_with_backoff_and_keep_failed_pods(dag):
    tune = dag.get_task("tuning.tune")
    kwargs = tune.partial_kwargs
    assert kwargs["retries"] == 8 and kwargs["retry_exponential_backoff"]
    assert kwargs["retry_policy"].rules[0].matches(PodPreempted("spot"))
    assert kwargs["on_finish_action"] == "delete_succeeded_pod" and kwargs["do_xcom_push"] is False
    assert dag.get_task("prepare_data").retry_policy is not None


def test_gke_backend_uses_the_google_operators():
    dag = load_dag("gke")
    assert type(dag.get_task("prepare_data")).__name__ == "GKETrainerPodOperator"
    assert dag.get_task("tuning.tune").operator_class.__name__ == "GKETunerPodOperator"
    start = dag.get_task("tuning.start_oracle")
    assert type(start).__name__ == "GKEStartOracleOperator"
    assert (start.project_id, start.location, start.cluster_name) == ("ml-project", "europe-west4", "ml")
    assert type(dag.get_task("tuning.wait_oracle")).__name__ == "GKEWaitOracleSensor"
    assert dag.get_task("tuning.stop_oracle").is_teardown


def test_gke_rendering_is_valid_too():
    dag = load_dag("gke")
    with cluster_backend("gke"):
        objects = render.render_all(dag, {"num_tuners": 2, "top_n": 1})
    for o in objects:
        kubernetes_validate.validate(o.manifest, SCHEMAS[0], strict=True)
    assert any(o.kind == "Pod" and o.task_id == "tuning.tune" for o in objects)


def test_the_manifests_in_include_are_valid_on_their_own():
    import yaml

    from tune_serve.kubernetes import manifests

    files = sorted(manifests.MANIFESTS.rglob("*.yaml"))
    assert len(files) >= 5
    for path in files:
        for document in yaml.safe_load_all(path.read_text()):
            kubernetes_validate.validate(document, SCHEMAS[0], strict=True)


def test_every_trainer_command_line_the_cluster_gets_round_trips(objects):
    """What each pod and the chief's Job actually receive is one --flag=value per field of the
    step's tune_contract dataclass, and parses back to the same command line."""
    from tune_contract.steps import STEP_ARGS

    steps = set()
    for o in objects:
        if o.kind not in ("Pod", "Job"):
            continue
        _, (base, *_) = _containers(o.manifest)
        *command, step = base["command"]
        assert command == ["python", "-m", "trainer"], base["command"]
        assert all(a.startswith("--") and "=" in a for a in base["args"]), base["args"]
        assert STEP_ARGS[step].from_argv(base["args"]).to_argv() == base["args"]
        steps.add(step)
    assert steps == {"prepare", "oracle", "tune", "train", "evaluate"}
