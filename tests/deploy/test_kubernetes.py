"""deploy/kubernetes against the Kubernetes schemas (kubernetes-validate ships them: no
network), the PodMonitor against the schema shipped beside it, the overlays' patches
applied and validated, and the manifests consistent with the image and the gateway."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from gateway.config.loader import load_config

ROOT = Path(__file__).resolve().parents[2]
BASE = ROOT / "deploy" / "kubernetes"
OVERLAYS = sorted(p for p in (BASE / "overlays").iterdir() if p.is_dir())
# The oldest release these manifests are for (autoscaling/v2, policy/v1, seccompProfile
# all GA well before) and the newest the validator knows.
VERSIONS = ("1.29.0", kubernetes_validate.utils.latest_version())
# Custom resources are not in the Kubernetes schemas: each is checked against its own.
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor.schema.json"}


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def kustomization(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((folder / "kustomization.yaml").read_text())
    return data


def base_resources() -> list[dict[str, Any]]:
    return [d for name in kustomization(BASE)["resources"] for d in documents(BASE / name)]


def validate(resource: dict[str, Any], version: str) -> None:
    schema_file = CRD_SCHEMAS.get((resource["apiVersion"], resource["kind"]))
    if schema_file is None:
        kubernetes_validate.validate(resource, version, strict=True)
    else:
        schema = json.loads((BASE / "schemas" / schema_file).read_text())
        jsonschema.Draft202012Validator(schema).validate(resource)


def merge(base: Any, patch: Any) -> Any:
    """A strategic merge patch as kustomize applies these: maps merge, lists of named
    items (containers, env) merge by name, other values are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base[key], value) if key in base else value
        return merged
    if isinstance(base, list) and isinstance(patch, list) and all("name" in i for i in patch):
        by_name = {item["name"]: item for item in base}
        out = [merge(by_name[i["name"]], i) if i["name"] in by_name else i for i in patch]
        return [i for i in base if i["name"] not in {p["name"] for p in patch}] + out
    return patch


def find(resources: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [r for r in resources if r["kind"] == kind]
    return found


@pytest.mark.parametrize("version", VERSIONS)
def test_every_manifest_validates(version: str) -> None:
    resources = base_resources()
    assert {r["kind"] for r in resources} == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "PodMonitor",
    }
    for resource in resources:
        validate(resource, version)


def test_every_yaml_file_is_in_a_kustomization() -> None:
    listed = {BASE / name for name in kustomization(BASE)["resources"]}
    for overlay in OVERLAYS:
        k = kustomization(overlay)
        assert k["resources"] == ["../.."]
        listed |= {overlay / p["path"] for p in k["patches"]} | {overlay / "kustomization.yaml"}
    files = {p for p in BASE.rglob("*.yaml") if p.name != "kustomization.yaml" or p.parent != BASE}
    assert files == listed


@pytest.mark.parametrize("overlay", OVERLAYS, ids=lambda p: p.name)
def test_overlays_patch_existing_resources_into_valid_ones(overlay: Path) -> None:
    resources = base_resources()
    for entry in kustomization(overlay)["patches"]:
        (patch,) = documents(overlay / entry["path"])
        (target,) = [
            r
            for r in resources
            if (r["kind"], r["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
        ]
        patched = merge(target, patch)
        validate(patched, VERSIONS[-1])
        resources[resources.index(target)] = patched
    assert find(resources, "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 3


def test_a_crd_schema_rejects_a_typo() -> None:
    monitor = find(base_resources(), "PodMonitor")
    typo = merge(monitor, {"spec": {"podMetricsEndpoint": []}})
    with pytest.raises(jsonschema.ValidationError):
        validate(typo, VERSIONS[-1])
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(merge(find(base_resources(), "Service"), {"spec": {"prots": []}}), VERSIONS[-1])


def configmap_file(tmp_path: Path) -> Path:
    data = find(base_resources(), "ConfigMap")["data"]
    path = tmp_path / "gateway.toml"
    path.write_text(data["gateway.toml"])
    return path


ENV = {"GATEWAY_ADMIN_TOKEN": "t", "REDIS_URL": "redis://redis:6379/0"}


def test_the_configmap_is_a_valid_gateway_config(tmp_path: Path) -> None:
    path = configmap_file(tmp_path)
    config = load_config(path, env=ENV)
    assert config.redis.url == ENV["REDIS_URL"] and not config.redis.cluster
    assert "demo" in config.models
    assert load_config(path, env={**ENV, "REDIS_CLUSTER": "true"}).redis.cluster
    for missing in ENV:  # a pod without its Secret fails at start, not half-configured
        with pytest.raises(Exception, match=missing):
            load_config(path, env={k: v for k, v in ENV.items() if k != missing})


def test_the_grace_period_covers_prestop_and_drain(tmp_path: Path) -> None:
    server = load_config(configmap_file(tmp_path), env=ENV).server
    pod = find(base_resources(), "Deployment")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    pre_stop = float(command[1])
    needed = pre_stop + server.drain_delay_s + server.drain_timeout_s
    assert pod["terminationGracePeriodSeconds"] >= needed + 5
    assert server.workers == 1


def test_the_deployment_fits_the_image_and_the_gateway(tmp_path: Path) -> None:
    resources = base_resources()
    deployment = find(resources, "Deployment")
    template = deployment["spec"]["template"]
    pod = template["spec"]
    (container,) = pod["containers"]
    # The image's numeric USER, so that runAsNonRoot can be checked by the kubelet.
    user = re.search(r"^USER (\d+):(\d+)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert user is not None
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user[1]
    assert str(pod["securityContext"]["runAsGroup"]) == user[2]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    assert "/tmp" in mounts  # the only place the gateway writes
    # The config file reached through the directory mount (a subPath never updates).
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    mount = mounts[str(config_path.parent)]
    assert "subPath" not in mount
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["configMap"]["name"] == find(resources, "ConfigMap")["metadata"]["name"]
    assert config_path.name in find(resources, "ConfigMap")["data"]
    port = load_config(configmap_file(tmp_path), env=ENV).server.port
    assert [p["containerPort"] for p in container["ports"] if p["name"] == "http"] == [port]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["resources"]["requests"]["cpu"]  # the HPA's utilisation needs it
    # Every selector picks the pods, and the HPA scales this Deployment.
    labels = template["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert find(resources, "Service")["spec"]["selector"].items() <= labels.items()
    for kind in ("PodDisruptionBudget", "PodMonitor"):
        assert find(resources, kind)["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = find(resources, "HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert find(resources, "PodMonitor")["spec"]["podMetricsEndpoints"][0]["port"] == "http"


def test_secrets_are_only_referenced() -> None:
    """No Secret is shipped; every credential comes from one by reference."""
    for path in BASE.rglob("*.yaml"):
        for doc in documents(path):
            assert doc.get("kind") != "Secret", path
    (container,) = find(base_resources(), "Deployment")["spec"]["template"]["spec"]["containers"]
    for env in container["env"]:
        if re.search(r"TOKEN|KEY|PASSWORD|REDIS_URL", env["name"]):
            assert "value" not in env and "secretKeyRef" in env["valueFrom"], env["name"]
    config = tomllib.loads(find(base_resources(), "ConfigMap")["data"]["gateway.toml"])
    assert config["server"]["admin_token"].startswith("${")
    for provider in config["providers"].values():
        assert "api_key" not in provider or provider["api_key"].startswith("${")
