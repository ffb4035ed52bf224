"""deploy/k8s cannot be applied here (no cluster): its manifests are checked against each other and Settings.

kubeconform is not published on PyPI or npm, so no schema validation runs; these checks are structural.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from execution_stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
PREFIX = "EXECUTION_STREAM_"
API_VERSIONS = {
    "ConfigMap": "v1",
    "Secret": "v1",
    "Service": "v1",
    "Deployment": "apps/v1",
    "PodDisruptionBudget": "policy/v1",
    "HorizontalPodAutoscaler": "autoscaling/v2",
    "ScaledObject": "keda.sh/v1alpha1",
    "Kustomization": "kustomize.config.k8s.io/v1beta1",
}
Manifest = dict[str, Any]


def manifests() -> list[tuple[Path, Manifest]]:
    found = []
    for path in sorted(K8S.rglob("*.y*ml")):
        for document in yaml.safe_load_all(path.read_text()):
            assert isinstance(document, dict), f"{path}: a document that is not a mapping"
            found.append((path, document))
    return found


def one(kind: str, name: str) -> Manifest:
    [found] = [m for _, m in manifests() if m["kind"] == kind and m.get("metadata", {}).get("name") == name]
    return found


def settings_data() -> dict[str, str]:
    """The ConfigMap's and the Secret's variables, as the pods get them through envFrom."""
    config = one("ConfigMap", "execution-stream-settings")["data"]
    secret = one("Secret", "execution-stream-secrets")["stringData"]
    return {**config, **secret}


def container(deployment: str) -> Manifest:
    [found] = one("Deployment", deployment)["spec"]["template"]["spec"]["containers"]
    return dict(found)


def matches(selector: Manifest, labels: Manifest) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def test_every_document_parses_with_a_known_kind_and_api_version() -> None:
    found = manifests()
    kinds = sorted(m["kind"] for _, m in found)
    assert kinds == sorted(
        [
            "ConfigMap",
            "Secret",
            "Deployment",
            "Deployment",
            "PodDisruptionBudget",
            "Service",
            "HorizontalPodAutoscaler",
            "ScaledObject",
            "Kustomization",
        ]
    )
    for path, manifest in found:
        assert manifest["apiVersion"] == API_VERSIONS[manifest["kind"]], path
        if manifest["kind"] != "Kustomization":
            labels = manifest["metadata"]["labels"]
            assert labels["app.kubernetes.io/part-of"] == "execution-stream", path


def test_the_kustomization_applies_every_manifest_but_the_examples() -> None:
    listed = one_kustomization()["resources"]
    on_disk = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(listed) == on_disk
    assert list((K8S / "examples").glob("*.yaml")), "the autoscaling example is missing"


def one_kustomization() -> Manifest:
    [found] = [m for _, m in manifests() if m["kind"] == "Kustomization"]
    return found


@pytest.mark.parametrize("name", ["execution-stream-worker", "execution-stream-api"])
def test_each_deployment_selects_its_own_pods_and_no_others(name: str) -> None:
    deployments = {m["metadata"]["name"]: m for _, m in manifests() if m["kind"] == "Deployment"}
    selector = deployments[name]["spec"]["selector"]["matchLabels"]
    for other, deployment in deployments.items():
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert matches(selector, labels) == (other == name), (name, other)


def test_every_variable_set_is_a_setting() -> None:
    names = set(settings_data())
    for deployment in ("execution-stream-worker", "execution-stream-api"):
        names |= {variable["name"] for variable in container(deployment).get("env", [])}
    ours = {name.removeprefix(PREFIX).lower() for name in names if name.startswith(PREFIX)}
    assert ours
    assert ours <= set(Settings.model_fields), ours - set(Settings.model_fields)
    known = {k.removeprefix(PREFIX).lower(): v for k, v in settings_data().items() if k.startswith(PREFIX)}
    Settings.model_validate(known)  # values validate


def test_the_secret_holds_placeholders_only() -> None:
    secret = one("Secret", "execution-stream-secrets")
    assert "data" not in secret
    assert all(value.startswith("REPLACE_ME") for value in secret["stringData"].values())


def test_both_deployments_run_the_cli_with_the_settings() -> None:
    for deployment, command in (("execution-stream-worker", "worker"), ("execution-stream-api", "api")):
        spec = container(deployment)
        assert spec["args"] == [command]
        assert [
            source.get("configMapRef", source.get("secretRef"))["name"] for source in spec["envFrom"]
        ] == [
            "execution-stream-settings",
            "execution-stream-secrets",
        ]


def test_no_more_workers_than_partitions() -> None:
    partitions = int(settings_data()["EXECUTION_STREAM_KAFKA_PARTITIONS"])
    assert 1 <= one("Deployment", "execution-stream-worker")["spec"]["replicas"] <= partitions
    assert one("ScaledObject", "execution-stream-worker")["spec"]["maxReplicaCount"] == partitions


def test_the_worker_is_probed_on_its_web_port_and_outlives_its_shutdown() -> None:
    worker = one("Deployment", "execution-stream-worker")["spec"]["template"]["spec"]
    spec = container("execution-stream-worker")
    [port] = spec["ports"]
    assert port == {"name": "http", "containerPort": int(settings_data()[f"{PREFIX}WORKER_WEB_PORT"])}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert spec[probe]["httpGet"] == {"path": "/healthz", "port": "http"}, probe
    assert worker["terminationGracePeriodSeconds"] >= 60


def test_the_worker_disruption_budget_covers_the_workers_only() -> None:
    budget = one("PodDisruptionBudget", "execution-stream-worker")["spec"]
    worker_labels = one("Deployment", "execution-stream-worker")["spec"]["template"]["metadata"]["labels"]
    api_labels = one("Deployment", "execution-stream-api")["spec"]["template"]["metadata"]["labels"]
    assert matches(budget["selector"]["matchLabels"], worker_labels)
    assert not matches(budget["selector"]["matchLabels"], api_labels)
    assert budget["maxUnavailable"] == 1


def test_the_api_service_and_autoscaler_target_the_api() -> None:
    api = one("Deployment", "execution-stream-api")
    spec = container("execution-stream-api")
    service = one("Service", "execution-stream-api")["spec"]
    assert matches(service["selector"], api["spec"]["template"]["metadata"]["labels"])
    assert [port["targetPort"] for port in service["ports"]] == ["http"]
    assert spec["ports"] == [{"name": "http", "containerPort": int(settings_data()[f"{PREFIX}API_PORT"])}]
    assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}

    autoscaler = one("HorizontalPodAutoscaler", "execution-stream-api")["spec"]
    assert autoscaler["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "execution-stream-api",
    }
    [metric] = autoscaler["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert spec["resources"]["requests"]["cpu"]  # utilization is relative to the request
    assert autoscaler["minReplicas"] <= api["spec"]["replicas"] <= autoscaler["maxReplicas"]


def test_the_keda_example_scales_the_workers_on_the_trigger_topic_lag() -> None:
    scaled = one("ScaledObject", "execution-stream-worker")["spec"]
    settings = settings_data()
    assert scaled["scaleTargetRef"]["name"] == "execution-stream-worker"
    [trigger] = scaled["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["bootstrapServers"] == settings[f"{PREFIX}KAFKA_BOOTSTRAP_SERVERS"]
    assert trigger["metadata"]["consumerGroup"] == settings[f"{PREFIX}CONSUMER_GROUP"]
    assert trigger["metadata"]["topic"] == settings[f"{PREFIX}TOPIC_TRIGGER_EXECUTION"]
    assert trigger["metadata"]["allowIdleConsumers"] == "false"
    assert 1 <= scaled["minReplicaCount"] <= scaled["maxReplicaCount"]
