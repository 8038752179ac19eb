"""pamcore-cisco-legacy: the resource setting, and the algorithms/hint it gives the SSH side,
through the real plugin host with the installed entry points."""

from __future__ import annotations

import pytest
from pamcore_cisco_legacy.plugin import parse_legacy_algorithms

from pamcore.model import Resource
from pamcore.plugins import build_plugin_host


@pytest.mark.parametrize(
    ("typed", "stored"), [("off", "off"), (" Cisco-Legacy ", "cisco-legacy"), ("OFF", "off")]
)
def test_setting_parser_accepts_off_and_profiles(typed: str, stored: str) -> None:
    assert parse_legacy_algorithms(typed) == stored


@pytest.mark.parametrize("typed", ["on", "yes", "", "cisco"])
def test_setting_parser_explains_what_is_accepted(typed: str) -> None:
    with pytest.raises(ValueError, match=r"must be 'off' or a profile name \(cisco-legacy\)"):
        parse_legacy_algorithms(typed)


def test_setting_registered_through_the_entry_point() -> None:
    host = build_plugin_host(strict=True)
    setting = host.hooks.resource_settings()[("cisco_legacy", "legacy_algorithms")]
    assert setting.default == "off"
    assert setting.parse("cisco-legacy") == "cisco-legacy"
    assert "ssh" in host.hooks.protocols()  # its dependency, pamcore-ssh, is there too


def test_algorithms_only_for_an_opted_in_resource() -> None:
    hooks = build_plugin_host(strict=True).hooks
    opted = Resource(name="sw01", settings={"cisco_legacy": {"legacy_algorithms": "cisco-legacy"}})
    plain = Resource(name="sw02", settings={})
    assert "diffie-hellman-group1-sha1" in hooks.ssh_algorithms(opted)["kex"]
    assert hooks.ssh_algorithms(plain) == {}


def test_handshake_hint_names_the_setting_when_not_opted_in() -> None:
    hooks = build_plugin_host(strict=True).hooks
    plain = Resource(name="sw02", settings={})
    hint = hooks.ssh_handshake_hint(plain, "no matching key exchange method found")
    assert hint is not None
    assert "pamcore resources set-setting sw02 cisco_legacy.legacy_algorithms cisco-legacy" in hint
    assert hooks.ssh_handshake_hint(plain, "connection reset") is None
