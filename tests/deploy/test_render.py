"""deploy/render.py renders the kustomize subset deploy/ uses, and refuses the rest."""
from __future__ import annotations

import pytest
import yaml

from deploy.render import RenderError, merge, render
from tests.deploy.conftest import OVERLAYS

DEPLOYMENT = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "labels": {"a": "1", "b": "2"}},
    "spec": {"template": {"spec": {"containers": [
        {"name": "web", "image": "chatstore", "env": [{"name": "A", "value": "1"}],
         "ports": [{"containerPort": 8080}]},
        {"name": "sidecar", "image": "other:1"}]}}},
}


def write(directory, name, *documents):
    (directory / name).write_text(yaml.safe_dump_all(documents))


def test_maps_merge_and_null_deletes():
    patched = merge(DEPLOYMENT, {"metadata": {"labels": {"b": None, "c": "3"}}})
    assert patched["metadata"]["labels"] == {"a": "1", "c": "3"}
    assert DEPLOYMENT["metadata"]["labels"] == {"a": "1", "b": "2"}, "the base is never changed"


def test_containers_and_env_merge_by_name():
    patch = {"spec": {"template": {"spec": {"containers": [
        {"name": "web", "env": [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]}]}}}}
    containers = merge(DEPLOYMENT, patch)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["web", "sidecar"]
    assert containers[0]["env"] == [{"name": "A", "value": "2"}, {"name": "B", "value": "3"}]
    assert containers[0]["image"] == "chatstore"


def test_lists_without_a_merge_key_are_replaced():
    policy = {"kind": "NetworkPolicy", "spec": {"egress": [{"ports": [{"port": 1}]}]}}
    assert merge(policy, {"spec": {"egress": [{"ports": [{"port": 2}]}]}})["spec"]["egress"] == [
        {"ports": [{"port": 2}]}]


def test_patch_directives_are_refused():
    with pytest.raises(RenderError, match="directives"):
        merge(DEPLOYMENT, {"spec": {"$patch": "replace"}})


def test_an_overlay_renders_resources_patches_images_and_namespace(tmp_path):
    base = tmp_path / "base"
    base.mkdir()
    write(base, "web.yaml", DEPLOYMENT)
    write(base, "kustomization.yaml", {"resources": ["web.yaml"], "namespace": "chat"})
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    write(overlay, "patch.yaml", {"kind": "Deployment", "metadata": {"name": "web"}, "spec": {"replicas": 3}})
    write(overlay, "kustomization.yaml", {"resources": ["../base"], "patches": [{"path": "patch.yaml"}],
                                          "images": [{"name": "chatstore", "newName": "reg/chatstore",
                                                      "newTag": "1.2"}]})
    [web] = render(overlay)
    assert web["spec"]["replicas"] == 3
    assert web["metadata"]["namespace"] == "chat"
    assert [c["image"] for c in web["spec"]["template"]["spec"]["containers"]] == ["reg/chatstore:1.2", "other:1"]


@pytest.mark.parametrize("kustomization", [
    {"resources": ["web.yaml"], "commonLabels": {"a": "b"}},
    {"resources": ["web.yaml"], "patches": [{"path": "patch.yaml", "target": {"kind": "Deployment"}}]},
    {"resources": ["web.yaml"], "patches": [{"path": "patch.yaml"}]},
    {"resources": ["web.yaml"], "images": [{"name": "nothing-uses-this", "newTag": "1"}]},
    {"resources": ["missing.yaml"]},
])
def test_what_the_renderer_does_not_do_is_refused(tmp_path, kustomization):
    write(tmp_path, "web.yaml", DEPLOYMENT)
    write(tmp_path, "patch.yaml", {"kind": "Deployment", "metadata": {"name": "not-web"}})
    write(tmp_path, "kustomization.yaml", kustomization)
    with pytest.raises(RenderError):
        render(tmp_path)


def test_the_overlays_named_by_the_issue_exist():
    assert OVERLAYS == ["postgres", "postgres-scylla-redis"]
