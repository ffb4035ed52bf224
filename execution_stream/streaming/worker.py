"""`execution-stream worker`: the Faust worker with every agent, until SIGINT or SIGTERM."""

from __future__ import annotations

from faust.worker import Worker

from execution_stream.settings import Settings
from execution_stream.streaming.app import build_app
from execution_stream.streaming.resources import PipelineResources


def run_worker(settings: Settings) -> int:
    resources = PipelineResources(settings)
    app = build_app(settings, resources)
    worker = Worker(app, resources, loglevel=settings.log_level.lower(), redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
