"""`--profile`: py-spy samples the worker, and moto's server, during P's throughput phase.

dynoxide is a native binary, which py-spy cannot sample: with it, only the worker is profiled.

py-spy is not a dependency of the project: install it into the venv for the measurement only
(`.venv/bin/pip install py-spy`). Each process gets a collapsed-stack file (`--format raw`,
one `frame;frame;... count` a line, readable by speedscope or flamegraph.pl), and a summary
of where its samples went is printed on standard error.
"""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import psutil

PROFILED = ("worker", "dynamodb")
SAMPLES_PER_SECOND = 100
TOP = 15
# "function (path/to/module.py:123)" in py-spy's raw frames; the line number is dropped to aggregate.
_LINE = re.compile(r":\d+\)$")


def py_spy() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


@dataclass
class Profiler:
    """Does nothing unless given an output directory; samples the processes `names` names."""

    output_dir: Path | None = None
    names: tuple[str, ...] = PROFILED
    outputs: dict[str, Path] = field(default_factory=dict)
    _running: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, processes: Mapping[str, psutil.Process]) -> None:
        if self.output_dir is None:
            return
        executable = py_spy()
        if executable is None:
            raise RuntimeError("--profile needs py-spy: .venv/bin/pip install py-spy")
        for name in self.names:
            if name not in processes:
                continue
            output = self.output_dir / f"profile-{name}.txt"
            command = [executable, "record", "--pid", str(processes[name].pid), "--format", "raw"]
            command += ["--rate", str(SAMPLES_PER_SECOND), "--nonblocking", "--output", str(output)]
            log = (self.output_dir / f"py-spy-{name}.log").open("wb")
            self._running.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT))
            self.outputs[name] = output

    def stop(self) -> None:
        running, self._running = self._running, []
        for process in running:
            process.send_signal(signal.SIGINT)
        for process in running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        if running:
            for name, path in self.outputs.items():
                print(summary(name, path), file=sys.stderr)


def summary(name: str, path: Path) -> str:
    """The functions most samples were in (inclusive) and ended in (self), as shares of all samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    if not path.exists():
        return f"{name}: no profile written ({path})"
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_LINE.sub(")", frame) for frame in stack.split(";")]
        total += count
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    lines = [f"{name}: {total} samples ({path})", "  inclusive:"]
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in inclusive.most_common(TOP * 2)]
    lines.append("  self:")
    lines += [f"    {100 * n / total:5.1f}%  {frame}" for frame, n in own.most_common(TOP)]
    return "\n".join(lines)
