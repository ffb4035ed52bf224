"""The running `dev` stack's environment, as a file another shell can `source` (`dev --env` prints it).

`dev` writes it once everything is up and removes it when it stops. It holds `export NAME='value'`
lines: every `EXECUTION_STREAM_*` setting the stack's processes run with (a generated JWT secret and
GitHub App key included: they are the local stack's own), the local AWS credentials, and `API` and
`TOKEN` for `curl`. Its first line names the pid of the `dev` that wrote it, so that a file left by a
killed `dev` is recognised as stale.
"""

from __future__ import annotations

import contextlib
import os
import shlex
from collections.abc import Mapping
from pathlib import Path

_HEADER = "# execution-stream dev pid={pid}: source this file, or run . <(execution-stream dev --env)"
_PID_PREFIX = "# execution-stream dev pid="


class DevEnvironmentError(RuntimeError):
    """No running `dev` stack's environment could be read; the message says why."""


def render(variables: Mapping[str, str], pid: int) -> str:
    lines = [_HEADER.format(pid=pid)]
    lines += [f"export {name}={shlex.quote(value)}" for name, value in variables.items()]
    return "\n".join(lines) + "\n"


def write_dev_environment(path: Path, variables: Mapping[str, str], pid: int | None = None) -> None:
    """Written whole or not at all (a reader never sees half a file), readable by its owner only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    partial.write_text(render(variables, os.getpid() if pid is None else pid))
    partial.chmod(0o600)
    partial.replace(path)


def remove_dev_environment(path: Path, pid: int | None = None) -> None:
    """Removes the file only if the `dev` with `pid` (default: this process) wrote it."""
    with contextlib.suppress(OSError, DevEnvironmentError):
        if writer_pid(path.read_text()) == (os.getpid() if pid is None else pid):
            path.unlink()


def read_dev_environment(path: Path) -> dict[str, str]:
    """The variables of the `dev` stack running now; DevEnvironmentError when there is none."""
    return parse(running_dev_environment(path))


def running_dev_environment(path: Path) -> str:
    """The file's text, if the `dev` that wrote it still runs; DevEnvironmentError otherwise."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise DevEnvironmentError(f"no execution-stream dev is running ({path} does not exist)") from None
    pid = writer_pid(text)
    if not _is_running(pid):
        raise DevEnvironmentError(f"the execution-stream dev that wrote {path} (pid {pid}) is not running")
    return text


def writer_pid(text: str) -> int:
    first_line = text.partition("\n")[0]
    if not first_line.startswith(_PID_PREFIX):
        raise DevEnvironmentError("not an environment file written by execution-stream dev")
    return int(first_line.removeprefix(_PID_PREFIX).partition(":")[0])


def parse(text: str) -> dict[str, str]:
    """The whole text at once: a quoted value (a PEM key) may span lines."""
    words = shlex.split(text, comments=True)
    assignments = (word for word in words if word != "export")
    return dict(assignment.partition("=")[::2] for assignment in assignments)


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
