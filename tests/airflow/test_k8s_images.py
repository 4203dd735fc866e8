"""Issue 21, finding 6: rendered pods ran `trainer:0.1.0` and `tensorflow/serving:2.20.0` by tag.
An image given with its digest is run by digest everywhere (pods, the chief's Job, TF Serving's
Deployment), the tag kept for people in an annotation; a malformed reference names its setting."""
from __future__ import annotations

import kubernetes_validate
import pytest
from k8s_testing import cluster_backend, load_dag

from tune_serve.kubernetes import images, render

DIGEST = "sha256:" + "ab" * 32
TRAINER = f"europe-docker.pkg.dev/ml/tune-serve/trainer:0.1.0@{DIGEST}"
SERVING = f"tensorflow/serving:2.20.0@sha256:{'cd' * 32}"


def _containers(manifest):
    kind = manifest["kind"]
    template = manifest["spec"]["template"] if kind in ("Job", "Deployment") else manifest
    return template["metadata"].get("annotations") or {}, template["spec"]["containers"]


def test_images_given_with_a_digest_are_run_by_digest_with_the_tag_kept_for_people():
    env = {"TUNE_SERVE_TRAINER_IMAGE": TRAINER, "TUNE_SERVE_SERVING_IMAGE": SERVING}
    dag = load_dag("kubernetes", **env)
    with cluster_backend("kubernetes", **env):
        objects = render.render_all(dag, {"num_tuners": 2, "top_n": 1, "max_trials": 2, "model_name": "diamonds"})
    with_containers = [o.manifest for o in objects if o.manifest["kind"] in ("Pod", "Job", "Deployment")]
    assert {m["kind"] for m in with_containers} == {"Pod", "Job", "Deployment"}
    for manifest in with_containers:
        annotations, containers = _containers(manifest)
        pulled = {c["image"] for c in containers}
        wanted = SERVING if manifest["kind"] == "Deployment" else TRAINER
        assert pulled == {images.parse(wanted, "x").for_pod()}, manifest["metadata"]["name"]
        assert all("@sha256:" in image and ":0.1.0" not in image and ":2.20.0" not in image for image in pulled)
        assert annotations[images.ANNOTATION] == wanted
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("reference,why", [
    ("trainer:0.1.0@sha256:abc", "a digest is sha256: and 64 lower-case hex digits"),
    ("Trainer:0.1.0", "is not an image reference"),
    ("trainer:0.1.0 --privileged", "is not an image reference"),
])
def test_a_malformed_image_names_its_setting(reference, why):
    with pytest.raises(ValueError, match=f"TUNE_SERVE_TRAINER_IMAGE: .*{why}"):
        images.parse(reference, "TUNE_SERVE_TRAINER_IMAGE")


def test_a_registry_port_is_not_a_tag():
    image = images.parse(f"registry.local:5000/ml/trainer@{DIGEST}", "x")
    assert (image.repository, image.tag, image.for_pod()) == ("registry.local:5000/ml/trainer", None,
                                                             f"registry.local:5000/ml/trainer@{DIGEST}")
    assert not images.parse("registry.local:5000/ml/trainer:1", "x").pinned
