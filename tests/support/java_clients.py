"""Apache Kafka's own console producer and consumer (Java), run from the broker's Maven-fetched jars:
a client we did not write, to prove what the service reads and writes is plain Kafka on the wire."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from execution_stream.dev_stack.kafka_jars import KAFKA_JARS_DIR

CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
KEY_SEPARATOR = "\t"
RUN_TIMEOUT_SECONDS = 60.0
# How the console consumer ends when no record came for its --timeout-ms: logged as an error, exit code 0.
IDLE_END = re.compile(
    r"^.* ERROR Error processing message, terminating consumer process:.*\n"
    r"org\.apache\.kafka\.common\.errors\.TimeoutException\n",
    re.MULTILINE,
)

# Warnings and errors on stderr: stdout is the consumer's records alone.
_LOG4J2_PROPERTIES = """\
status = warn
appender.stderr.type = Console
appender.stderr.name = stderr
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = WARN
rootLogger.appenderRef.stderr.ref = stderr
"""


@dataclass(frozen=True)
class JavaRun:
    """One console tool's run: its command, exit code and output."""

    command: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def report(self) -> str:
        return (
            f"$ {' '.join(self.command)}\nexit code {self.returncode} after {self.seconds:.1f}s\n"
            f"--- stderr\n{self.stderr}\n--- stdout (first 4000 characters)\n{self.stdout[:4000]}"
        )

    def raise_unless_clean(self, what: str, expected_end: re.Pattern[str] | None = None) -> None:
        """A failed send is only logged by the console producer: an ERROR line counts as failure,
        but for the `expected_end`."""
        stderr = expected_end.sub("", self.stderr, count=1) if expected_end else self.stderr
        if self.returncode != 0 or " ERROR " in stderr:
            raise AssertionError(f"{what} failed\n{self.report()}")


@dataclass(frozen=True)
class ConsumedRecord:
    key: str
    value: str


@dataclass(frozen=True)
class ConsoleConsumption:
    run: JavaRun
    records: list[ConsumedRecord]

    def raise_unless_clean(self, what: str) -> None:
        self.run.raise_unless_clean(what, expected_end=IDLE_END)
        if f"Processed a total of {len(self.records)} messages" not in self.run.stderr:
            raise AssertionError(f"{what}: {len(self.records)} records parsed\n{self.run.report()}")


@dataclass(frozen=True)
class KafkaConsoleClients:
    """The console tools against `bootstrap_servers`; `work_dir` holds their logging configuration."""

    bootstrap_servers: str
    work_dir: Path

    def produce(self, topic: str, records: Sequence[tuple[str, bytes]], codec: str) -> JavaRun:
        """Sends `records` (key, value) to `topic`, compressed with `codec`, one line each."""
        arguments = [
            *("--bootstrap-server", self.bootstrap_servers, "--topic", topic),
            *("--compression-codec", codec),
            *("--reader-property", "parse.key=true", "--reader-property", f"key.separator={KEY_SEPARATOR}"),
        ]
        return self._run(CONSOLE_PRODUCER, arguments, "".join(_line(key, value) for key, value in records))

    def consume(self, topic: str, idle_ms: int) -> ConsoleConsumption:
        """Every committed record of `topic` from its beginning, until none came for `idle_ms`."""
        arguments = [
            *("--bootstrap-server", self.bootstrap_servers, "--topic", topic, "--from-beginning"),
            *("--timeout-ms", str(idle_ms), "--isolation-level", "read_committed"),
            *("--formatter-property", "print.key=true"),
            *("--formatter-property", f"key.separator={KEY_SEPARATOR}"),
        ]
        run = self._run(CONSOLE_CONSUMER, arguments, "")
        return ConsoleConsumption(run, [_parse(line) for line in run.stdout.splitlines() if line])

    def _run(self, main_class: str, arguments: list[str], stdin: str) -> JavaRun:
        command = [*self._java(), main_class, *arguments]
        started = time.monotonic()
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, timeout=RUN_TIMEOUT_SECONDS, check=False
        )
        return JavaRun(command, result.returncode, result.stdout, result.stderr, time.monotonic() - started)

    def _java(self) -> list[str]:
        java = shutil.which("java")
        if java is None:
            raise AssertionError("Java (java on PATH) is needed to run Kafka's console clients")
        if not any(KAFKA_JARS_DIR.glob("kafka-tools-*.jar")):
            raise AssertionError(
                f"no kafka-tools jar in {KAFKA_JARS_DIR}: fetch the jars of deploy/local/pom.xml again "
                "with `make deploy/local/target/kafka-libs/.fetched`"
            )
        log_config = self.work_dir / "tools-log4j2.properties"
        if not log_config.exists():
            log_config.parent.mkdir(parents=True, exist_ok=True)
            log_config.write_text(_LOG4J2_PROPERTIES)
        return [
            *(java, "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1"),
            f"-Dlog4j2.configurationFile={log_config}",
            *("-cp", f"{KAFKA_JARS_DIR}/*"),
        ]


def _line(key: str, value: bytes) -> str:
    text = value.decode()
    if KEY_SEPARATOR in key or "\n" in key + text:
        raise ValueError(f"record keyed {key!r} does not fit on one line with a {KEY_SEPARATOR!r} separator")
    return f"{key}{KEY_SEPARATOR}{text}\n"


def _parse(line: str) -> ConsumedRecord:
    key, separator, value = line.partition(KEY_SEPARATOR)
    if not separator:
        raise AssertionError(f"a console consumer line without a key separator: {line!r}")
    return ConsumedRecord(key, value)
