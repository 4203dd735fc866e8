"""TF Serving's objects for one model, rendered: pure functions of the model, its state and settings.

One Deployment per model (`tfserving-<model>`, `object_name`), its Service, and an immutable
ConfigMap per model config (named by the hash of its content): TF Serving's ModelServerConfig
listing the versions loaded and where the labels `stable`/`canary` point (`ServingState`, kept
as an annotation on the Deployment and on each ConfigMap). Nothing here talks to the cluster
(`serving_cluster`) or to storage (`serving_versions`); `render()` is what `make render-k8s` shows.
"""
from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

from tune_contract.enums import STABLE
from tune_serve.kubernetes import images, manifests
from tune_serve.kubernetes.settings import ServingSettings, serving_settings
from tune_serve.serving import publisher

STATE_ANNOTATION = "tune-serve/serving-state"
MODEL_ANNOTATION = "tune-serve/model-name"  # whose Deployment this is, checked before touching it
INSTANCE_LABEL = "app.kubernetes.io/instance"
CONFIG_FILE = "models.config"
REST_PORT, GRPC_PORT = 8501, 8500


@dataclass(frozen=True)
class ServingState:
    """What TF Serving loads (`versions`) and where the labels point."""

    base_path: str
    versions: tuple[int, ...] = ()
    labels: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"base_path": self.base_path, "versions": list(self.versions),
                           "labels": self.labels}, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ServingState:
        data = json.loads(text)
        return cls(data["base_path"], tuple(data["versions"]), {k: int(v) for k, v in data["labels"].items()})

    def canary(self, version: int) -> ServingState:
        """The stable version and `version` loaded, labelled as the publisher says (`publisher.canary`)."""
        stable = self.labels.get(STABLE)
        return ServingState(self.base_path, tuple(sorted({*([stable] if stable else []), version})),
                            publisher.canary(self.labels, version))

    def promoted(self, version: int) -> ServingState:
        """The same versions loaded, `stable` → `version` (`publisher.promoted`)."""
        return ServingState(self.base_path, self.versions, publisher.promoted(self.labels, version))


# ---- the objects ----------------------------------------------------------------------------

OBJECT_PREFIX = "tfserving-"
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_MAX_LABEL = 63  # a Service name and a label value are DNS-1123 labels


def object_name(model_name: str) -> str:
    """`tfserving-<model>`: one name per model, a valid DNS-1123 label.

    A model name that is a DNS label without `--` and fits (every name the DAG's Param
    allows) is used as it is. Any other is cleaned, cut to 40 characters and suffixed with
    `--` and a hash of the full name: only those names contain `--`, so no two models share
    a name (the Deployment also records its model, checked before it is touched)."""
    if _DNS_LABEL.fullmatch(model_name) and "--" not in model_name \
            and len(OBJECT_PREFIX) + len(model_name) <= _MAX_LABEL:
        return OBJECT_PREFIX + model_name
    cleaned = re.sub(r"[^a-z0-9]+", "-", model_name.lower()).strip("-")[:40].rstrip("-") or "model"
    return f"{OBJECT_PREFIX}{cleaned}--{hashlib.sha256(model_name.encode()).hexdigest()[:10]}"


def model_config(model_name: str, state: ServingState) -> str:
    """TF Serving's ModelServerConfig, protobuf text format."""
    versions = " ".join(f"versions: {v}" for v in state.versions)
    labels = "".join(f'\n    version_labels {{ key: "{k}" value: {v} }}'
                     for k, v in sorted(state.labels.items()))
    return (f'model_config_list {{\n  config {{\n    name: "{model_name}"\n'
            f'    base_path: "{state.base_path}"\n'
            f'    model_platform: "tensorflow"\n'
            f'    model_version_policy {{ specific {{ {versions} }} }}{labels}\n'
            f"  }}\n}}\n")


def instance_labels(model_name: str) -> dict[str, str]:
    return {INSTANCE_LABEL: object_name(model_name).removeprefix("tfserving-")}


def config_map(model_name: str, state: ServingState, ss: ServingSettings) -> dict:
    text = model_config(model_name, state)
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    manifest = manifests.named(manifests.load("serving/configmap.yaml"),
                               f"{object_name(model_name)}-{digest}", ss.namespace,
                               instance_labels(model_name))
    manifest["metadata"]["annotations"] = {STATE_ANNOTATION: state.to_json()}
    manifest["data"] = {CONFIG_FILE: text}
    return manifest


def deployment(model_name: str, state: ServingState, ss: ServingSettings) -> dict:
    manifest = manifests.named(manifests.load("serving/deployment.yaml"), object_name(model_name),
                               ss.namespace, instance_labels(model_name))
    manifest["metadata"]["annotations"] = {STATE_ANNOTATION: state.to_json(), MODEL_ANNOTATION: model_name}
    spec = manifest["spec"]
    spec["replicas"] = ss.replicas
    spec["selector"]["matchLabels"].update(instance_labels(model_name))
    pod = spec["template"]
    pod["metadata"]["labels"].update(instance_labels(model_name))
    pod["spec"]["serviceAccountName"] = ss.service_account
    container = pod["spec"]["containers"][0]
    container["image"] = images.parse(ss.image, "TUNE_SERVE_SERVING_IMAGE").for_pod()
    pod["metadata"].setdefault("annotations", {})[images.ANNOTATION] = ss.image  # the tag, for people
    resources = container["resources"]  # ephemeral storage: the file's policy
    resources["requests"].update(cpu=ss.cpu, memory=ss.memory)
    resources["limits"]["memory"] = ss.memory
    for probe in ("readinessProbe", "startupProbe", "livenessProbe"):
        container[probe]["httpGet"]["path"] = f"/v1/models/{model_name}"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    volumes["config"]["configMap"]["name"] = config_map(model_name, state, ss)["metadata"]["name"]
    if ss.storage_claim:
        pod["spec"]["volumes"].append({"name": "models",
                                       "persistentVolumeClaim": {"claimName": ss.storage_claim,
                                                                 "readOnly": True}})
        container["volumeMounts"].append({"name": "models", "mountPath": ss.storage_mount_path,
                                          "readOnly": True})
    return manifest


def service(model_name: str, ss: ServingSettings) -> dict:
    manifest = manifests.named(manifests.load("serving/service.yaml"), object_name(model_name), ss.namespace,
                               instance_labels(model_name))
    manifest["spec"]["selector"].update(instance_labels(model_name))
    return manifest


def render(model_name: str, state: ServingState, ss: ServingSettings | None = None) -> list[dict]:
    """Every object a deployment in `state` consists of (render_k8s, tests)."""
    ss = ss or serving_settings()
    return [config_map(model_name, state, ss), deployment(model_name, state, ss), service(model_name, ss)]


def rest_url(model_name: str, ss: ServingSettings) -> str:
    return ss.url or f"http://{object_name(model_name)}.{ss.namespace}.svc.cluster.local:{REST_PORT}"
