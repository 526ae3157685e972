from __future__ import annotations

import pytest

from compose.loader.envfile import parse_env_text
from compose.loader.errors import LoadError


def test_env_file_syntax() -> None:
    text = (
        "# a comment\n"
        "\n"
        "PLAIN=value\n"
        "export EXPORTED=yes\n"
        "SPACED = around \n"
        "INLINE=value # comment\n"
        "HASH=a#b\n"
        "SINGLE='raw $PLAIN \\n'\n"
        'DOUBLE="tab\\there ${PLAIN}"\n'
        'MULTI="one\ntwo"\n'
        "EMPTY=\n"
        "REF=${PLAIN}-${MISSING:-dflt}\n"
        "ESCAPED=$$literal\n"
        "DOTTED.key-x=1\n"
    )
    assert parse_env_text(text, file=".env") == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "around",
        "INLINE": "value",
        "HASH": "a#b",
        "SINGLE": "raw $PLAIN \\n",
        "DOUBLE": "tab\there value",
        "MULTI": "one\ntwo",
        "EMPTY": "",
        "REF": "value-dflt",
        "ESCAPED": "$literal",
        "DOTTED.key-x": "1",
    }


def test_bare_key_takes_environment_value_or_is_skipped() -> None:
    assert parse_env_text("FROM_SHELL\nNOT_SET\n", file=".env", environ={"FROM_SHELL": "s"}) == {"FROM_SHELL": "s"}


def test_interpolation_uses_shell_after_file() -> None:
    assert parse_env_text("A=${HOME_DIR}/x\n", file=".env", environ={"HOME_DIR": "/h"}) == {"A": "/h/x"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('A="never closed\n', ".env: line 1: unterminated double-quoted value"),
        ("OK=1\nB='open\n", ".env: line 2: unterminated single-quoted value"),
        ("1BAD=x\n", ".env: line 1: invalid variable name in '1BAD=x'"),
    ],
)
def test_env_file_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(LoadError) as info:
        parse_env_text(text, file=".env")
    assert str(info.value) == message
