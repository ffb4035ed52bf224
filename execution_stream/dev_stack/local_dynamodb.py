"""What `dev` and the tests need of a local DynamoDB endpoint (dynoxide or moto's server), and its probe."""

from __future__ import annotations

import urllib.error
import urllib.request
from pathlib import Path
from typing import Protocol

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


class LocalDynamoDB(Protocol):
    """A DynamoDB-compatible server on loopback, started and stopped by the local stack."""

    work_dir: Path
    port: int

    @property
    def endpoint_url(self) -> str: ...

    @property
    def log_path(self) -> Path: ...

    @property
    def pid(self) -> int | None:
        """The server process's id while it runs (the benchmark accounts for its CPU)."""
        ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def answers(self) -> bool: ...


def endpoint_answers(endpoint_url: str) -> bool:
    """True when a ListTables at `endpoint_url` succeeds within 2 s."""
    request = urllib.request.Request(endpoint_url, data=b"{}", headers=_PROBE_HEADERS)
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False
