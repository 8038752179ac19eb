"""The DirectConnect login grammar, formatted and parsed in one place."""

from __future__ import annotations

import pytest

from pamcore.directconnect import DirectConnectName, login_name, parse_login
from pamcore.errors import ValidationError


def test_format_writes_spaces_as_dashes() -> None:
    assert login_name("alice", "Linux Admin", "web 01") == "alice+Linux-Admin+web-01"
    assert login_name("alice", None, "web01") == "alice+web01"


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("alice", DirectConnectName("alice")),
        ("alice+web01", DirectConnectName("alice", resource="web01")),
        ("alice+linux-admin+web01", DirectConnectName("alice", "linux-admin", "web01")),
    ],
)
def test_parse(text: str, parsed: DirectConnectName) -> None:
    assert parse_login(text) == parsed
    assert parse_login(login_name(parsed.username, parsed.activity, parsed.resource)) == parsed


@pytest.mark.parametrize("text", ["", "alice+", "+web01", "a++b", "a+b+c+d"])
def test_malformed_names_say_the_grammar(text: str) -> None:
    with pytest.raises(ValidationError, match="user, user\\+resource or user\\+activity"):
        parse_login(text)
