"""`dev`'s GitHub where no GitHub App is configured: the GitHub stand-in as a local process, with a
GitHub App key generated for it, so that `github_actions` jobs are dispatched (to it) rather than
failed. Its `GET /_control/dispatches` lists what it received; `demo` reports on those runs."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from execution_stream.dev_stack import processes

LOCAL_APP_ID = "1"
DISPATCHES_PATH = "/_control/dispatches"


@dataclass(frozen=True)
class AppKey:
    private_pem: str
    public_pem: str


def generate_app_key() -> AppKey:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return AppKey(private.decode(), public.decode())


@dataclass
class LocalGithub:
    work_dir: Path
    port: int = field(default_factory=processes.free_loopback_port)
    app_id: str = LOCAL_APP_ID
    app_key: AppKey = field(default_factory=generate_app_key)
    start_timeout_seconds: float = 30.0
    _process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.work_dir / "github.log"

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        public_key_file = self.work_dir / "app-public-key.pem"
        public_key_file.write_text(self.app_key.public_pem)
        command = [
            *(sys.executable, "-m", "execution_stream.dev_stack.github_standin"),
            *("--port", str(self.port), "--app-id", self.app_id, "--public-key-file", str(public_key_file)),
        ]
        self._process = processes.spawn(command, self.log_path)
        what = f"the local GitHub {self.api_url}"
        processes.wait_until(self.answers, self._process, self.start_timeout_seconds, what, self.log_path)

    def stop(self) -> None:
        if self._process is not None:
            processes.stop(self._process, grace_seconds=10)
            self._process = None

    def answers(self) -> bool:
        return standin_answers(self.api_url)


def standin_answers(github_api_url: str) -> bool:
    """Whether `github_api_url` is a GitHub stand-in: it lists the dispatches it received."""
    try:
        with urllib.request.urlopen(github_api_url.rstrip("/") + DISPATCHES_PATH, timeout=2) as response:
            return response.status == 200 and isinstance(json.load(response), list)
    except (urllib.error.URLError, OSError, ValueError):
        return False
