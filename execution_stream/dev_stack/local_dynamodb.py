"""What `dev` and the tests need of a local DynamoDB endpoint (dynoxide or moto's server), and its probe."""

from __future__ import annotations

import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from execution_stream.dev_stack import processes

# A well-formed, unchecked SigV4 header: dynoxide refuses a request without one; moto ignores it.
_PROBE_HEADERS = {
    "X-Amz-Target": "DynamoDB_20120810.ListTables",
    "Content-Type": "application/x-amz-json-1.0",
    "X-Amz-Date": "20200101T000000Z",
    "Authorization": (
        "AWS4-HMAC-SHA256 Credential=local/20200101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=0"
    ),
}


@dataclass
class LocalDynamoDB:
    """A DynamoDB-compatible server on loopback, started and stopped by the local stack; a server
    names its command and what to call it."""

    work_dir: Path
    port: int = field(default_factory=processes.free_loopback_port)
    start_timeout_seconds: float = 60.0
    _process: subprocess.Popen[bytes] | None = None
    name: ClassVar[str] = "a DynamoDB server"

    def command(self) -> list[str]:
        raise NotImplementedError

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "dynamodb.log"

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (the benchmark accounts for its CPU)."""
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        self._process = processes.spawn(self.command(), self.log_path)
        processes.wait_until(
            self.answers,
            self._process,
            self.start_timeout_seconds,
            f"{self.name}'s DynamoDB endpoint {self.endpoint_url}",
            self.log_path,
        )

    def stop(self) -> None:
        if self._process is not None:
            processes.stop(self._process, grace_seconds=10)
            self._process = None

    def answers(self) -> bool:
        return endpoint_answers(self.endpoint_url)


def endpoint_answers(endpoint_url: str) -> bool:
    """True when a ListTables at `endpoint_url` succeeds within 2 s."""
    request = urllib.request.Request(endpoint_url, data=b"{}", headers=_PROBE_HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
