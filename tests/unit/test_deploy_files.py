"""docker-compose.yml cannot be run here (no Docker engine): it is checked against the settings."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from execution_stream.dev_stack import containers
from execution_stream.dev_stack.dynoxide_server import BINARY, PACKAGE, PACKAGE_DIR
from execution_stream.dev_stack.kafka_broker import server_properties
from execution_stream.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "EXECUTION_STREAM_"
MAVEN = "{http://maven.apache.org/POM/4.0.0}"
PINNED_IMAGE = re.compile(r"[\w./-]+:v?\d+(\.\d+)+")


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def test_every_variable_the_compose_file_sets_is_a_setting() -> None:
    services = compose()["services"]
    names = {name for service in services.values() for name in service.get("environment", {})}
    ours = {name.removeprefix(PREFIX).lower() for name in names if name.startswith(PREFIX)}
    assert ours
    assert ours <= set(Settings.model_fields), ours - set(Settings.model_fields)


def test_the_compose_broker_is_kafka_4_in_kraft_like_the_local_broker() -> None:
    kafka = compose()["services"]["kafka"]
    assert re.fullmatch(r"apache/kafka:4\.\d+\.\d+", kafka["image"])
    environment = kafka["environment"]
    local = dict(line.split("=", 1) for line in server_properties(9092, 9093, Path("/data")).splitlines())
    shared = ("process.roles", "offsets.topic.replication.factor", "group.initial.rebalance.delay.ms")
    for name in (*shared, "auto.create.topics.enable"):
        assert str(environment[f"KAFKA_{name.upper().replace('.', '_')}"]) == local[name]


def test_the_worker_api_and_init_run_the_cli() -> None:
    services = compose()["services"]
    assert [services[name]["command"] for name in ("init", "worker", "api")] == [
        ["init"],
        ["worker"],
        ["api"],
    ]
    assert 'ENTRYPOINT ["execution-stream"]' in (ROOT / "Dockerfile").read_text()


def pom_kafka_version() -> str:
    properties = ET.parse(PACKAGE_DIR / "pom.xml").getroot().find(f"{MAVEN}properties")
    assert properties is not None
    version = properties.findtext(f"{MAVEN}kafka.version")
    assert version, "deploy/local/pom.xml names no kafka.version"
    return version


def pinned_dynoxide() -> str:
    version = json.loads((PACKAGE_DIR / "package.json").read_text())["dependencies"][PACKAGE]
    assert isinstance(version, str)
    return version


def mounts(service: dict[str, Any]) -> dict[PurePosixPath, Path]:
    """The service's bind mounts: path in the container -> path on the host."""
    found = {}
    for volume in service.get("volumes", []):
        host, container = volume.split(":")[:2]
        found[PurePosixPath(container)] = (ROOT / host).resolve()
    return found


def on_host(service: dict[str, Any], container_path: str) -> Path:
    """Where a path in the service's container comes from on the host, through its bind mounts."""
    path = PurePosixPath(container_path)
    for container, host in sorted(mounts(service).items(), key=lambda mount: -len(mount[0].parts)):
        if path == container or container in path.parents:
            return host.joinpath(*path.parts[len(container.parts) :])
    raise AssertionError(f"{container_path} is not mounted from the host")


def test_every_image_is_pinned_to_a_version() -> None:
    images = [service["image"] for service in compose()["services"].values() if "image" in service]
    assert images
    for image in images:
        assert PINNED_IMAGE.fullmatch(image), f"{image}: not pinned to a version"


def test_the_compose_broker_is_the_kafka_version_of_the_local_broker() -> None:
    assert compose()["services"]["kafka"]["image"] == f"apache/kafka:{pom_kafka_version()}"


def test_the_testcontainers_broker_is_the_kafka_version_of_the_local_broker() -> None:
    assert f"apache/kafka:{pom_kafka_version()}" == containers.KAFKA_IMAGE


def test_the_compose_dynamodb_is_dynoxide_installed_from_the_local_package_and_lock() -> None:
    service = compose()["services"]["dynamodb"]
    context = ROOT / service["build"]["context"]
    assert context.resolve() == PACKAGE_DIR.resolve()
    dockerfile = (context / service["build"]["dockerfile"]).read_text()
    assert "COPY package.json package-lock.json ./" in dockerfile
    assert "RUN npm ci" in dockerfile
    binary = BINARY.relative_to(PACKAGE_DIR).as_posix()
    assert re.search(rf"COPY --from=\w+ \S+/{re.escape(binary)} ", dockerfile), binary
    lock = json.loads((PACKAGE_DIR / "package-lock.json").read_text())
    assert lock["packages"][f"node_modules/{PACKAGE}"]["version"] == pinned_dynoxide() == "1.2.1"


def test_the_services_reach_dynoxide_on_the_port_it_serves() -> None:
    services = compose()["services"]
    dockerfile = (PACKAGE_DIR / services["dynamodb"]["build"]["dockerfile"]).read_text()
    served = re.search(r'"--port", "(\d+)"', dockerfile)
    assert served
    for name in ("init", "worker", "api"):
        endpoint = services[name]["environment"]["EXECUTION_STREAM_DYNAMODB_ENDPOINT_URL"]
        assert endpoint == f"http://dynamodb:{served.group(1)}", name
    assert services["dynamodb"]["ports"] == [f"{served.group(1)}:{served.group(1)}"]


def prometheus_config_on_host() -> Path:
    service = compose()["services"]["prometheus"]
    [config] = [arg.split("=", 1)[1] for arg in service["command"] if arg.startswith("--config.file=")]
    return on_host(service, config)


def test_prometheus_in_compose_reads_the_config_and_rules_of_deploy_prometheus() -> None:
    config_path = prometheus_config_on_host()
    assert config_path == ROOT / "deploy" / "prometheus" / "prometheus.yml"
    config = yaml.safe_load(config_path.read_text())
    rules = [config_path.parent / name for name in config["rule_files"]]
    assert rules == [ROOT / "deploy" / "prometheus" / "alerts.yaml"]
    assert all(path.is_file() for path in rules)


def test_prometheus_in_compose_scrapes_ports_the_worker_and_api_listen_on_for_it() -> None:
    services = compose()["services"]
    config = yaml.safe_load(prometheus_config_on_host().read_text())
    targets = {
        job["job_name"]: [target for static in job["static_configs"] for target in static["targets"]]
        for job in config["scrape_configs"]
    }
    worker = services["worker"]["environment"]
    api = services["api"]["environment"]
    assert worker[f"{PREFIX}WORKER_WEB_HOST"] == api[f"{PREFIX}API_HOST"] == "0.0.0.0"
    assert targets == {
        "execution-stream-worker": [f"worker:{worker[f'{PREFIX}WORKER_WEB_PORT']}"],
        "execution-stream-api": [f"api:{api[f'{PREFIX}API_PORT']}"],
    }
    assert int(worker[f"{PREFIX}WORKER_WEB_PORT"]) == Settings.model_fields["worker_web_port"].default


def test_grafana_in_compose_is_provisioned_with_the_prometheus_and_the_dashboard() -> None:
    services = compose()["services"]
    grafana = services["grafana"]
    provisioning = on_host(grafana, "/etc/grafana/provisioning")
    assert provisioning == ROOT / "deploy" / "grafana" / "provisioning"
    [datasources] = [yaml.safe_load(p.read_text()) for p in (provisioning / "datasources").glob("*.yaml")]
    [source] = datasources["datasources"]
    assert (source["type"], source["url"], source["isDefault"]) == (
        "prometheus",
        "http://prometheus:9090",
        True,
    )
    assert services["prometheus"]["ports"] == ["9090:9090"]
    [dashboards] = [yaml.safe_load(p.read_text()) for p in (provisioning / "dashboards").glob("*.yaml")]
    [provider] = dashboards["providers"]
    folder = PurePosixPath(provider["options"]["path"])
    loaded = [host for container, host in mounts(grafana).items() if folder in container.parents]
    assert loaded == [ROOT / "deploy" / "grafana" / "execution-stream.json"]
    assert loaded[0].is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert on_host(grafana, home) == loaded[0]
