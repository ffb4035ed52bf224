"""The running dev stack's environment file: what a shell sources is what `demo` and `dev --env` read."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from execution_stream.dev_stack.dev_env_file import DevEnvironmentError, parse, render, writer_pid

NAMES = st.from_regex(r"[A-Z_][A-Z0-9_]{0,30}", fullmatch=True)
VALUES = st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"), max_size=80)


@given(st.dictionaries(NAMES, VALUES, max_size=8), st.integers(min_value=1, max_value=2**22))
def test_what_is_rendered_is_parsed_back_whatever_the_values(variables: dict[str, str], pid: int) -> None:
    text = render(variables, pid)

    assert parse(text) == variables
    assert writer_pid(text) == pid


def test_a_key_spanning_lines_and_quotes_survive() -> None:
    variables = {"KEY": "-----BEGIN KEY-----\nabc\n-----END KEY-----\n", "QUOTED": 'it\'s "here" $HOME'}

    assert parse(render(variables, 7)) == variables


def test_a_file_dev_did_not_write_is_refused() -> None:
    with pytest.raises(DevEnvironmentError, match="not an environment file written by execution-stream dev"):
        writer_pid("export A=1\n")
