"""`execution-stream worker`: the Faust worker with every agent, until SIGINT or SIGTERM."""

from __future__ import annotations

from faust.worker import Worker

from execution_stream.adapters import kafka_fetching
from execution_stream.observability.logs import configure_logging
from execution_stream.settings import Settings
from execution_stream.streaming import faust_fixes
from execution_stream.streaming.agents import build_app
from execution_stream.streaming.metrics import WorkerMetrics
from execution_stream.streaming.resources import PipelineResources
from execution_stream.streaming.web import WorkerWeb


def run_worker(settings: Settings) -> int:
    faust_fixes.apply()
    configure_logging(settings.log_level)
    resources = PipelineResources(settings)
    metrics = WorkerMetrics()
    kafka_fetching.on_undecodable(metrics.count_undecodable)
    app = build_app(settings, resources, metrics)
    web = WorkerWeb(settings.worker_web_host, settings.worker_web_port, resources, metrics)
    worker = Worker(
        app,
        resources,
        web,
        loglevel=settings.log_level.lower(),
        redirect_stdouts=False,
        override_logging=False,
        quiet=True,
    )
    worker.execute_from_commandline()
    return 0
