"""The same two services as containers, where a Docker engine answers (testcontainers)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KAFKA_IMAGE = "apache/kafka:4.4.0"
MOTO_IMAGE = "motoserver/moto:5.1.0"
MOTO_PORT = 5000


@dataclass
class KafkaContainerService:
    image: str = KAFKA_IMAGE
    _container: Any = field(default=None)

    @property
    def bootstrap_servers(self) -> str:
        return str(self._container.get_bootstrap_server())

    def start(self) -> None:
        from testcontainers.kafka import KafkaContainer  # noqa: PLC0415 - a dev extra

        self._container = KafkaContainer(self.image).with_kraft()
        self._container.start()

    def stop(self) -> None:
        if self._container is not None:
            self._container.stop()
            self._container = None


@dataclass
class DynamoDBContainerService:
    image: str = MOTO_IMAGE
    _container: Any = field(default=None)

    @property
    def endpoint_url(self) -> str:
        host = self._container.get_container_host_ip()
        return f"http://{host}:{self._container.get_exposed_port(MOTO_PORT)}"

    def start(self) -> None:
        from testcontainers.core.container import DockerContainer  # noqa: PLC0415
        from testcontainers.core.waiting_utils import wait_for_logs  # noqa: PLC0415

        self._container = DockerContainer(self.image).with_exposed_ports(MOTO_PORT)
        self._container.start()
        wait_for_logs(self._container, "Running on", timeout=60)

    def stop(self) -> None:
        if self._container is not None:
            self._container.stop()
            self._container = None
