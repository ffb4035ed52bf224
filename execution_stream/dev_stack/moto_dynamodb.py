"""moto's server with one request processed at a time, as `python -m` of this module HOST PORT.

DynamoDB applies a conditional write atomically per item; moto's threaded server checks the
condition and writes in two steps, so two concurrent updates can both pass. Serializing the
processing (connections are still accepted concurrently) restores the guarantee we test against.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterable
from types import FrameType
from typing import Any

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from werkzeug.serving import run_simple


def serialized(application: Any) -> Any:
    lock = threading.Lock()

    def one_at_a_time(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with lock:
            return list(application(environ, start_response))

    return one_at_a_time


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])

    def exit_on(signum: int, frame: FrameType | None) -> None:
        sys.exit(0)

    signal.signal(signal.SIGTERM, exit_on)
    application = DomainDispatcherApplication(create_backend_app)
    run_simple(host, port, serialized(application), threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
