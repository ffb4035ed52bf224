"""A one-node Apache Kafka 4 broker (KRaft, broker and controller in one JVM) as a local process."""

from __future__ import annotations

import asyncio
import base64
import subprocess
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient

from execution_stream.dev_stack import processes
from execution_stream.dev_stack.kafka_jars import ensure_kafka_jars

_LOG4J2_PROPERTIES = """\
status = warn
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log_file}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = file
logger.kafka.name = kafka
logger.kafka.level = INFO
logger.apache.name = org.apache.kafka
logger.apache.level = INFO
"""


@dataclass
class KafkaBroker:
    """Start, stop and restart keep the same ports and the same data directory."""

    work_dir: Path
    port: int = field(default_factory=processes.free_loopback_port)
    controller_port: int = field(default_factory=processes.free_loopback_port)
    heap: str = "768m"
    start_timeout_seconds: float = 90.0
    _process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "kafka.log"

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    def start(self) -> None:
        classpath = f"{ensure_kafka_jars()}/*"
        config = self._write_config()
        if not (self.data_dir / "meta.properties").exists():
            self._format_storage(classpath, config)
        self._process = processes.spawn(self._java(classpath, "kafka.Kafka", str(config)), self.log_path)
        processes.wait_until(
            self.answers_metadata,
            self._process,
            self.start_timeout_seconds,
            f"Kafka broker on {self.bootstrap_servers}",
            self.log_path,
        )

    def stop(self) -> None:
        if self._process is not None:
            processes.stop(self._process, grace_seconds=30)
            self._process = None

    def kill(self) -> None:
        if self._process is not None:
            processes.kill(self._process)
            self._process = None

    def answers_metadata(self) -> bool:
        return processes.accepts_connections(self.port) and asyncio.run(
            _answers_metadata(self.bootstrap_servers)
        )

    def _java(self, classpath: str, main_class: str, *args: str) -> list[str]:
        return [
            "java",
            f"-Xmx{self.heap}",
            "-XX:+UseG1GC",
            "-XX:TieredStopAtLevel=1",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={self.work_dir / 'log4j2.properties'}",
            f"-Dkafka.logs.dir={self.work_dir}",
            "-cp",
            classpath,
            main_class,
            *args,
        ]

    def _format_storage(self, classpath: str, config: Path) -> None:
        cluster_id = _cluster_id()
        command = self._java(
            classpath, "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)
        )
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise processes.StackError(f"formatting Kafka storage failed: {result.stderr or result.stdout}")

    def _write_config(self) -> Path:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        (self.work_dir / "log4j2.properties").write_text(
            _LOG4J2_PROPERTIES.format(log_file=self.work_dir / "kafka-server.log")
        )
        config = self.work_dir / "server.properties"
        config.write_text(server_properties(self.port, self.controller_port, self.data_dir))
        return config


def _cluster_id() -> str:
    """A random cluster id that does not start with '-', which the format tool would read as an option."""
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate


def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(data_dir),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "6",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "auto.create.topics.enable": "false",
        "log.segment.bytes": str(64 * 1024 * 1024),
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


async def _answers_metadata(bootstrap_servers: str) -> bool:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers, request_timeout_ms=3000)
    try:
        await admin.start()
        brokers = await admin.describe_cluster()
    except Exception:
        return False
    finally:
        await admin.close()
    return bool(brokers.get("brokers"))
