"""The environment file on disk: written whole, read only while its `dev` runs, removed by its writer."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from execution_stream.dev_stack.dev_env_file import (
    DevEnvironmentError,
    read_dev_environment,
    remove_dev_environment,
    write_dev_environment,
)


def test_the_file_of_a_running_dev_is_read_and_only_its_owner_may_read_it(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "dev.env"

    write_dev_environment(path, {"EXECUTION_STREAM_API_PORT": "8080"})

    assert read_dev_environment(path) == {"EXECUTION_STREAM_API_PORT": "8080"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [entry.name for entry in path.parent.iterdir()] == ["dev.env"]


def test_a_file_left_by_a_dev_that_no_longer_runs_is_stale(tmp_path: Path) -> None:
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True
    )
    dead_pid = int(ended.stdout)
    path = tmp_path / "dev.env"
    write_dev_environment(path, {"A": "1"}, pid=dead_pid)

    with pytest.raises(DevEnvironmentError, match=f"pid {dead_pid}\\) is not running"):
        read_dev_environment(path)


def test_no_file_says_no_dev_runs(tmp_path: Path) -> None:
    with pytest.raises(DevEnvironmentError, match="no execution-stream dev is running"):
        read_dev_environment(tmp_path / "dev.env")


def test_a_dev_removes_only_the_file_it_wrote(tmp_path: Path) -> None:
    path = tmp_path / "dev.env"
    write_dev_environment(path, {"A": "1"}, pid=os.getppid())

    remove_dev_environment(path)
    assert path.exists(), "another dev's file was removed"

    remove_dev_environment(path, pid=os.getppid())
    assert not path.exists()
