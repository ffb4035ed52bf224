"""`execution-stream dev`: the whole service on a local stack, until Ctrl-C or SIGTERM.

Once everything it started is ready it prints one line on standard output, a contract for scripts:
`ready {"kafka": "127.0.0.1:PORT", "dynamodb": "http://127.0.0.1:PORT"}`.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from execution_stream.localstack.stack import local_stack
from execution_stream.provisioning import provision
from execution_stream.settings import Settings

# moto accepts any credentials; real ones are never needed for the local endpoint.
LOCAL_AWS_DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def run_dev(settings: Settings, work_dir: str | None) -> int:
    stop_requested = threading.Event()
    _on_signals(stop_requested)
    for name, value in LOCAL_AWS_DEFAULTS.items():
        os.environ.setdefault(name, value)
    with local_stack(settings, Path(work_dir) if work_dir else None) as stack:
        local = settings.model_copy(
            update={
                "kafka_bootstrap_servers": stack.endpoints.kafka_bootstrap_servers,
                "dynamodb_endpoint_url": stack.endpoints.dynamodb_endpoint_url,
            }
        )
        for line in asyncio.run(provision(local)):
            print(line, file=sys.stderr)
        endpoints = {
            "kafka": stack.endpoints.kafka_bootstrap_servers,
            "dynamodb": stack.endpoints.dynamodb_endpoint_url,
        }
        print(f"ready {json.dumps(endpoints)}", flush=True)
        stop_requested.wait()
        print("stopping", file=sys.stderr)
    return 0


def _on_signals(stop_requested: threading.Event) -> None:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
