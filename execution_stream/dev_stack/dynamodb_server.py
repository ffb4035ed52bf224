"""moto's DynamoDB server (Apache-2.0) on loopback: the DynamoDB endpoint for dev and tests."""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from execution_stream.dev_stack import processes


@dataclass
class DynamoDBServer:
    work_dir: Path
    port: int = field(default_factory=processes.free_loopback_port)
    start_timeout_seconds: float = 60.0
    _process: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "dynamodb.log"

    def start(self) -> None:
        module = "execution_stream.dev_stack.moto_dynamodb"
        command = [sys.executable, "-m", module, "127.0.0.1", str(self.port)]
        self._process = processes.spawn(command, self.log_path)
        processes.wait_until(
            self.answers,
            self._process,
            self.start_timeout_seconds,
            f"DynamoDB endpoint {self.endpoint_url}",
            self.log_path,
        )

    def stop(self) -> None:
        if self._process is not None:
            processes.stop(self._process, grace_seconds=10)
            self._process = None

    def answers(self) -> bool:
        request = urllib.request.Request(
            self.endpoint_url,
            data=b"{}",
            headers={
                "X-Amz-Target": "DynamoDB_20120810.ListTables",
                "Content-Type": "application/x-amz-json-1.0",
            },
        )
        try:
            with urllib.request.urlopen(request, timeout=2) as response:
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False
