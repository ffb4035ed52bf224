"""The broker's jars, fetched once from Maven Central by `deploy/local/pom.xml` and reused."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from execution_stream.dev_stack.processes import StackError

PROJECT_ROOT = Path(__file__).resolve().parents[2]
POM_DIR = PROJECT_ROOT / "deploy" / "local"


KAFKA_JARS_DIR = POM_DIR / "target" / "kafka-libs"


def ensure_kafka_jars() -> Path:
    jars = KAFKA_JARS_DIR
    if any(jars.glob("kafka_2.13-*.jar")) and any(jars.glob("kafka-tools-[0-9]*.jar")):
        return jars
    if shutil.which("mvn") is None:
        raise StackError("Maven (mvn) is needed once to fetch the Kafka broker's jars")
    command = ["mvn", "-q", "-B", "-f", str(POM_DIR / "pom.xml"), "dependency:copy-dependencies"]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise StackError(f"fetching the Kafka jars failed:\n{result.stdout}\n{result.stderr}")
    return jars
