"""What the processes of a run cost while it lasts: peak RSS, CPU seconds, DynamoDB requests served."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

SAMPLE_SECONDS = 0.2
MIB = 1024 * 1024
MACHINE = "machine"
OTHERS = "others"


@dataclass
class PeakRss:
    """Samples one process's resident set size until stopped; the highest value seen, in bytes."""

    process: psutil.Process
    peak: int = 0
    samples: int = 0
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._sample())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._measure()

    @property
    def peak_mib(self) -> float:
        return self.peak / MIB

    async def _sample(self) -> None:
        while True:
            self._measure()
            await asyncio.sleep(SAMPLE_SECONDS)

    def _measure(self) -> None:
        with contextlib.suppress(psutil.Error):
            self.peak = max(self.peak, self.process.memory_info().rss)
            self.samples += 1


def started_broker() -> psutil.Process | None:
    """The Kafka broker this process started (none where the environment named one)."""
    for child in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "kafka.Kafka" in " ".join(child.cmdline()):
                return child
    return None


def stack_processes(worker_pid: int, dynamodb: psutil.Process | None) -> dict[str, psutil.Process]:
    """The worker, this process, the DynamoDB server (by its pid, where started here) and the broker."""
    found = {"worker": psutil.Process(worker_pid), "bench": psutil.Process()}
    if dynamodb is not None:
        found["dynamodb"] = dynamodb
    broker = started_broker()
    if broker is not None:
        found["kafka"] = broker
    return found


def cpu_seconds(processes: Mapping[str, psutil.Process]) -> dict[str, float]:
    """CPU seconds of each process so far, and of the whole machine (`machine`: all but idle)."""
    seconds = {}
    for name, process in processes.items():
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            seconds[name] = times.user + times.system
    machine = psutil.cpu_times()
    seconds[MACHINE] = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
    return seconds


@dataclass(frozen=True)
class CpuShare:
    """CPU seconds each process used during a phase, per second of the phase (1.0 = one core)."""

    wall_seconds: float
    cores: dict[str, float] = field(default_factory=dict)

    @classmethod
    def between(cls, before: Mapping[str, float], after: Mapping[str, float], wall: float) -> CpuShare:
        """`others`: what the rest of the machine used meanwhile (other work skews the figures)."""
        shared = before.keys() & after.keys()
        cores = {name: (after[name] - before[name]) / wall for name in sorted(shared)}
        machine = cores.pop(MACHINE, None)
        if machine is not None:
            cores[OTHERS] = max(0.0, machine - sum(cores.values()))
        return cls(wall, cores)


def served_requests(log_path: Path | None) -> int | None:
    """Requests moto's server has answered so far: werkzeug logs one `"POST / HTTP/1.1"` per request."""
    if log_path is None or not log_path.exists():
        return None
    with log_path.open("rb") as log:
        return sum(1 for line in log if b'"POST / HTTP/1.1"' in line)
