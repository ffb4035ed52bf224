"""moto's DynamoDB server (Apache-2.0) on loopback: the local endpoint where the setting
EXECUTION_STREAM_LOCAL_DYNAMODB is `moto` (dynoxide is the default).

It keeps its tables in memory; its Query reads the whole table, and each request costs more CPU.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from execution_stream.dev_stack import processes
from execution_stream.dev_stack.local_dynamodb import endpoint_answers


@dataclass
class MotoServer:
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

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> None:
        module = "execution_stream.dev_stack.moto_dynamodb"
        command = [sys.executable, "-m", module, "127.0.0.1", str(self.port)]
        self._process = processes.spawn(command, self.log_path)
        processes.wait_until(
            self.answers,
            self._process,
            self.start_timeout_seconds,
            f"moto's DynamoDB endpoint {self.endpoint_url}",
            self.log_path,
        )

    def stop(self) -> None:
        if self._process is not None:
            processes.stop(self._process, grace_seconds=10)
            self._process = None

    def answers(self) -> bool:
        return endpoint_answers(self.endpoint_url)
