"""The rendered manifests: valid against Kubernetes' schemas, and in agreement with the image and the settings.

Every environment variable a manifest sets must be a setting of config/__init__.py (read from there, so settings
added later are covered), every required one must be set, and the whole environment of each container must
load; the image's command, port and health check must be what the manifests run and probe.
"""
from __future__ import annotations

import json
import re

import kubernetes_validate
import pytest

from app import create_app
from config import DESCRIPTIONS, Settings, load_settings
from deploy.render import render
from tests.deploy.conftest import OVERLAYS, ROOT, rendered

#: The oldest Kubernetes release still supported upstream when this was written, and the newest whose schemas
#: kubernetes-validate ships.
KUBERNETES_VERSIONS = ("1.30.0", "1.37.0")
#: Values standing in for the Secret's keys, of the form each setting requires.
SECRET_SAMPLES = {"database-url": "postgresql://chatstore:secret@postgres:5432/chatstore",
                  "attachment-signing-key": "0123456789abcdef" * 4,
                  "redis-url": "redis://redis:6379/0"}
#: Variables the Dockerfile sets that are not the service's settings, and why.
IMAGE_ENVIRONMENT = {
    "PATH": "the virtualenv's bin first",
    "PYTHONUNBUFFERED": "log lines leave at once",
    "PYTHONDONTWRITEBYTECODE": "the source tree is read-only",
    "XDG_RUNTIME_DIR": "where gunicorn puts its control socket",
    "PIP_NO_CACHE_DIR": "build stage only: no pip cache in the layers",
    "PIP_DISABLE_PIP_VERSION_CHECK": "build stage only: no network check",
}
#: The benchmark's memory bound per worker (bench/README.md; 113 MB measured), and the master's share.
WORKER_MEMORY_MIB = 200
MASTER_MEMORY_MIB = 64


def resources_of(overlay: str, kind: str) -> list[dict]:
    return [resource for resource in rendered(overlay) if resource["kind"] == kind]


def one(overlay: str, kind: str, name: str) -> dict:
    [found] = [r for r in resources_of(overlay, kind) if r["metadata"]["name"] == name]
    return found


def workloads(overlay: str) -> list[dict]:
    return [r for r in rendered(overlay) if r["kind"] in ("Deployment", "Job")]


def containers(workload: dict) -> list[dict]:
    pod = workload["spec"]["template"]["spec"]
    return [*pod.get("initContainers", []), *pod["containers"]]


def environment_of(overlay: str, container: dict) -> dict[str, str]:
    """What the container's process finds in its environment, the Secret's keys replaced by samples."""
    environment: dict[str, str] = {}
    for source in container.get("envFrom", []):
        environment.update(one(overlay, "ConfigMap", source["configMapRef"]["name"])["data"])
    for variable in container.get("env", []):
        if "value" in variable:
            environment[variable["name"]] = variable["value"]
        else:
            reference = variable["valueFrom"]["secretKeyRef"]
            assert reference["name"] == "chatstore-secrets", variable
            environment[variable["name"]] = SECRET_SAMPLES[reference["key"]]
    return environment


def dockerfile_instructions() -> list[tuple[str, str]]:
    """The final stage's instructions as (INSTRUCTION, arguments), continuation lines joined."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    instructions = [(line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line.strip() else "")
                    for line in (raw.strip() for raw in text.splitlines()) if line and not line.startswith("#")]
    last_from = max(index for index, (name, _) in enumerate(instructions) if name == "FROM")
    return instructions[last_from:]


def dockerfile_environment(instructions=None) -> dict[str, str]:
    environment = {}
    for name, arguments in instructions or dockerfile_instructions():
        if name == "ENV":
            environment.update(dict(pair.split("=", 1) for pair in arguments.split()))
    return environment


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_resource_is_valid_against_the_kubernetes_schemas(overlay, version):
    for resource in rendered(overlay):
        kubernetes_validate.validate(resource, version, strict=True)  # raises on the first error


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_variable_the_manifests_set_is_a_setting_and_every_container_loads_its_settings(overlay):
    for workload in workloads(overlay):
        for container in containers(workload):
            environment = environment_of(overlay, container)
            unknown = set(environment) - set(DESCRIPTIONS)
            assert not unknown, f"{workload['metadata']['name']}/{container['name']}: not settings: {unknown}"
            settings = load_settings(environment)  # raises SettingsError listing every bad or missing value
            assert not settings.is_sqlite, "a cluster's processes share one database: DATABASE_URL is required"
            assert settings.event_relay == "process", "the relay runs in its own Deployment"
            if settings.event_bus == "redis":
                assert "REDIS_URL" in environment, "EVENT_BUS=redis needs REDIS_URL (its default is localhost)"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_overlays_use_the_databases_they_are_named_for(overlay):
    settings = load_settings(environment_of(overlay, containers(one(overlay, "Deployment", "chatstore-web"))[0]))
    expected = {"postgres": ("sql", "sql"), "postgres-scylla-redis": ("scylla", "redis")}[overlay]
    assert (settings.message_store, settings.event_bus) == expected
    if settings.event_bus == "redis":
        assert settings.rate_limit_storage_url.startswith("redis"), "the rate limits share the Redis"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_a_rollout_drops_no_request(overlay):
    web = one(overlay, "Deployment", "chatstore-web")
    [container] = web["spec"]["template"]["spec"]["containers"]
    settings = load_settings(environment_of(overlay, container))
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][1])
    grace = web["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    # The pause, then gunicorn's graceful stop, then a few seconds to close pools: and not much more, or a
    # stuck pod holds a rollout up for nothing.
    assert pause + settings.graceful_timeout + 3 <= grace <= pause + settings.graceful_timeout + 10
    assert web["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["readinessProbe"]["timeoutSeconds"] > settings.readiness_timeout
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_image_the_manifests_and_the_settings_agree_on_command_and_port(overlay):
    instructions = dockerfile_instructions()
    [command] = [json.loads(arguments) for name, arguments in instructions if name == "CMD"]
    [exposed] = [int(arguments) for name, arguments in instructions if name == "EXPOSE"]
    [healthcheck] = [arguments for name, arguments in instructions if name == "HEALTHCHECK"]
    assert f"127.0.0.1:{exposed}/healthz" in healthcheck
    assert load_settings(dockerfile_environment(instructions)).bind == f"0.0.0.0:{exposed}"

    web = one(overlay, "Deployment", "chatstore-web")
    [container] = web["spec"]["template"]["spec"]["containers"]
    assert container["command"] == command
    [port] = container["ports"]
    settings = load_settings(environment_of(overlay, container))
    assert settings.bind == f"0.0.0.0:{port['containerPort']}" and port["containerPort"] == exposed
    annotations = web["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == exposed
    service = one(overlay, "Service", "chatstore-web")
    assert service["spec"]["ports"][0]["targetPort"] == port["name"]
    pod_labels = web["spec"]["template"]["metadata"]["labels"]
    for selector in (service["spec"]["selector"],
                     one(overlay, "PodDisruptionBudget", "chatstore-web")["spec"]["selector"]["matchLabels"]):
        assert selector.items() <= pod_labels.items()
    assert one(overlay, "HorizontalPodAutoscaler", "chatstore-web")["spec"]["scaleTargetRef"]["name"] == "chatstore-web"


def test_the_image_sets_only_settings_and_known_variables():
    for name in dockerfile_environment(dockerfile_instructions()):
        assert name in DESCRIPTIONS or name in IMAGE_ENVIRONMENT, name
    build_stage = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text()).split("\nFROM ", 2)[1]
    for name in dockerfile_environment([("ENV", line[4:]) for line in build_stage.splitlines()
                                        if line.startswith("ENV ")]):
        assert name in IMAGE_ENVIRONMENT, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_command_the_manifests_run_exists(overlay):
    cli = create_app(Settings()).cli
    for workload in workloads(overlay):
        for container in containers(workload):
            program, *arguments = container["command"]
            if program == "gunicorn":
                assert arguments == ["-c", "config/gunicorn.py"] and (ROOT / arguments[1]).is_file()
                continue
            assert program == "flask", container["command"]
            group, command = arguments[:2]
            found = cli.commands[group].commands[command]
            options = {option for parameter in found.params for option in parameter.opts}
            assert {a for a in arguments[2:] if a.startswith("--")} <= options, container["command"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_sized_and_locked_down(overlay):
    for workload in workloads(overlay):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] and pod["automountServiceAccountToken"] is False
        for container in containers(workload):
            assert {"cpu", "memory"} <= container["resources"]["requests"].keys()
            assert {"cpu", "memory"} <= container["resources"]["limits"].keys()
            assert container["securityContext"] == {"allowPrivilegeEscalation": False,
                                                    "readOnlyRootFilesystem": True,
                                                    "capabilities": {"drop": ["ALL"]}}
            assert {mount["mountPath"] for mount in container["volumeMounts"]} == {"/tmp"}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_web_pods_memory_fits_the_benchmarks_bound_for_its_workers(overlay):
    [container] = one(overlay, "Deployment", "chatstore-web")["spec"]["template"]["spec"]["containers"]
    workers = load_settings(environment_of(overlay, container)).web_workers
    limit = container["resources"]["limits"]["memory"]
    assert limit.endswith("Mi")
    assert int(limit[:-2]) >= workers * WORKER_MEMORY_MIB + MASTER_MEMORY_MIB
    assert int(container["resources"]["limits"]["cpu"]) == workers, "a gevent worker uses one core at most"


def test_the_scylla_overlay_migrates_both_schemas_in_its_job():
    job = one("postgres-scylla-redis", "Job", "chatstore-migrate")
    assert [c["command"] for c in containers(job)] == [["flask", "scylla", "migrate"], ["flask", "db", "upgrade"]]
    assert [c["command"] for c in containers(one("postgres", "Job", "chatstore-migrate"))] == [
        ["flask", "db", "upgrade"]]


def test_the_documented_downgrade_job_renders_to_a_downgrade(tmp_path):
    """docs/operations.md's "Roll back": a kustomization over an overlay whose patch turns the migrations Job
    into a downgrade."""
    (tmp_path / "kustomization.yaml").write_text(
        f"resources: [{ROOT / 'deploy' / 'overlays' / 'postgres'}]\npatches: [{{path: job.yaml}}]\n")
    (tmp_path / "job.yaml").write_text(
        "apiVersion: batch/v1\nkind: Job\nmetadata: {name: chatstore-migrate}\n"
        "spec: {template: {spec: {containers: [{name: db-upgrade, command: [flask, db, downgrade, \"0006\"]}]}}}\n")
    [job] = [r for r in render(tmp_path) if r["kind"] == "Job"]
    [container] = containers(job)
    assert container["command"] == ["flask", "db", "downgrade", "0006"]
    assert container["env"][0]["name"] == "DATABASE_URL" and container["image"] == "chatstore:0.1.0"
    assert "downgrade" in create_app(Settings()).cli.commands["db"].commands
