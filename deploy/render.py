"""Render a kustomization in deploy/ offline: ``python -m deploy.render deploy/overlays/postgres``.

deploy/ is plain kustomize (``kubectl apply -k deploy/overlays/postgres`` applies it), but no kustomize binary
can be installed here: it is on neither PyPI nor Debian's stable packages, and the Python bindings that exist need
Python 3.14. CI still has to check exactly what would be applied, so this module renders the part of kustomize
that deploy/ uses, and refuses everything else rather than ignoring it, so that an overlay cannot use a feature
whose effect the checks would not see:

- ``resources``: files (multi-document YAML) and directories holding a kustomization.yaml, in order;
- ``patches`` with a ``path``: strategic-merge patches naming their target by kind and name. Maps merge key by
  key, a null deletes a key, lists of containers, init containers, env, volumes (by ``name``), volume mounts
  (by ``mountPath``) and container ports (by ``containerPort``) merge item by item; any other list is replaced,
  as kustomize does for fields without a merge key;
- ``namespace``: set on every resource;
- ``images``: ``newName``, ``newTag`` and ``digest`` of the containers whose image is ``name``.
"""
from __future__ import annotations

import copy
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

SUPPORTED_FIELDS = frozenset({"apiVersion", "kind", "resources", "patches", "namespace", "images"})
#: List fields merged item by item, and the key that identifies an item (Kubernetes' patchMergeKey).
MERGE_KEYS = {"containers": "name", "initContainers": "name", "env": "name", "volumes": "name",
              "volumeMounts": "mountPath", "ports": "containerPort"}
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "Job"})


class RenderError(ValueError):
    """The kustomization uses something this renderer does not do, or is inconsistent."""


def render(directory: Path | str) -> list[dict[str, Any]]:
    """The resources the kustomization in ``directory`` produces, in order."""
    directory = Path(directory)
    kustomization = _load_one(directory / "kustomization.yaml")
    unsupported = set(kustomization) - SUPPORTED_FIELDS
    if unsupported:
        raise RenderError(f"{directory}/kustomization.yaml: unsupported fields {sorted(unsupported)}")
    resources: list[dict[str, Any]] = []
    for entry in kustomization.get("resources", []):
        path = directory / entry
        if path.is_dir():
            resources.extend(render(path))
        else:
            resources.extend(_load_all(path))
    for patch_entry in kustomization.get("patches", []):
        if set(patch_entry) != {"path"}:
            raise RenderError(f"{directory}: only patches with a path alone are supported, not {patch_entry}")
        for patch in _load_all(directory / patch_entry["path"]):
            target = _find(resources, patch)
            resources[resources.index(target)] = merge(target, patch)
    for image in kustomization.get("images", []):
        _set_image(resources, image, directory)
    if "namespace" in kustomization:
        for resource in resources:
            resource.setdefault("metadata", {})["namespace"] = kustomization["namespace"]
    return resources


def merge(base: Any, patch: Any, field: str | None = None) -> Any:
    """``patch`` applied to ``base`` as a strategic-merge patch (the subset the module docstring lists)."""
    if isinstance(patch, dict):
        if any(isinstance(key, str) and key.startswith("$") for key in patch):
            raise RenderError(f"patch directives are not supported: {sorted(patch)}")
        if not isinstance(base, dict):
            return copy.deepcopy(patch)
        merged = copy.deepcopy(base)
        for key, value in patch.items():
            if value is None:
                merged.pop(key, None)
            elif key in merged:
                merged[key] = merge(merged[key], value, key)
            else:
                merged[key] = copy.deepcopy(value)
        return merged
    merge_key = MERGE_KEYS.get(field or "")
    if isinstance(patch, list) and isinstance(base, list) and merge_key:
        merged_list = copy.deepcopy(base)
        for item in patch:
            if not isinstance(item, dict) or merge_key not in item:
                raise RenderError(f"items of {field} need their merge key {merge_key!r}: {item}")
            same = [index for index, old in enumerate(merged_list) if old.get(merge_key) == item[merge_key]]
            if same:
                merged_list[same[0]] = merge(merged_list[same[0]], item)
            else:
                merged_list.append(copy.deepcopy(item))
        return merged_list
    return copy.deepcopy(patch)


def _set_image(resources: list[dict[str, Any]], image: dict[str, Any], directory: Path) -> None:
    unknown = set(image) - {"name", "newName", "newTag", "digest"}
    if unknown or "name" not in image:
        raise RenderError(f"{directory}: images entries take name, newName, newTag, digest; got {image}")
    matched = False
    for container in _containers(resources):
        name, _, _ = container["image"].partition("@")
        repository, _, _ = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
        if repository != image["name"]:
            continue
        matched = True
        reference = image.get("newName", repository)
        if "digest" in image:
            reference += "@" + image["digest"]
        elif "newTag" in image:
            reference += ":" + str(image["newTag"])
        container["image"] = reference
    if not matched:
        raise RenderError(f"{directory}: no container uses the image {image['name']!r}")


def _containers(resources: Iterable[dict[str, Any]]) -> Iterable[dict[str, Any]]:
    for resource in resources:
        if resource.get("kind") in WORKLOAD_KINDS:
            pod = resource["spec"]["template"]["spec"]
            yield from pod.get("initContainers", [])
            yield from pod.get("containers", [])


def _find(resources: list[dict[str, Any]], patch: dict[str, Any]) -> dict[str, Any]:
    kind, name = patch.get("kind"), patch.get("metadata", {}).get("name")
    found = [r for r in resources if r.get("kind") == kind and r.get("metadata", {}).get("name") == name]
    if len(found) != 1:
        raise RenderError(f"a patch must match exactly one resource; {kind}/{name} matches {len(found)}")
    return found[0]


def _load_one(path: Path) -> dict[str, Any]:
    documents = _load_all(path)
    if len(documents) != 1:
        raise RenderError(f"{path}: expected one document, found {len(documents)}")
    return documents[0]


def _load_all(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise RenderError(f"{path}: no such file")
    return [document for document in yaml.safe_load_all(path.read_text()) if document is not None]


def main(arguments: list[str]) -> int:
    if len(arguments) != 1:
        print("usage: python -m deploy.render DIRECTORY_WITH_KUSTOMIZATION", file=sys.stderr)
        return 2
    try:
        resources = render(arguments[0])
    except RenderError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    sys.stdout.write(yaml.safe_dump_all(resources, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
