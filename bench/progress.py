"""A one-line progress bar on standard error (the table and nothing else goes to standard output)."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import Self, TextIO

WIDTH = 30
REDRAW_SECONDS = 0.1


class Progress:
    """`label [#####.....] done/total 12.3s`, redrawn in place on a terminal, one line otherwise."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = max(total, 1)
        self.done = 0
        self._stream = stream or sys.stderr
        self._interactive = self._stream.isatty()
        self._started = time.monotonic()
        self._drawn_at = 0.0

    def __enter__(self) -> Self:
        self._draw(force=True)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)

    def update(self, done: int) -> None:
        self.done = min(done, self.total)
        self._draw(force=self.done >= self.total)

    def close(self) -> None:
        if self._interactive:
            self._draw(force=True)
            self._stream.write("\n")
        else:
            self._stream.write(self._line() + "\n")
        self._stream.flush()

    def _draw(self, force: bool) -> None:
        now = time.monotonic()
        if not self._interactive or (not force and now - self._drawn_at < REDRAW_SECONDS):
            return
        self._drawn_at = now
        self._stream.write("\r" + self._line())
        self._stream.flush()

    def _line(self) -> str:
        filled = WIDTH * self.done // self.total
        bar = "#" * filled + "." * (WIDTH - filled)
        elapsed = time.monotonic() - self._started
        return f"{self.label:<34} [{bar}] {self.done}/{self.total} {elapsed:6.1f}s"
