"""A real slapd per test (:mod:`slapd_peer`), and a core whose plugins are the built-ins and
this one, set up against it: OpenLDAP's way (``uid``, ``groupOfNames`` searched and walked
one level up) unless a test switches to Active Directory's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pamcore_ldap.plugin
import pytest
from slapd_peer import (
    BREAK_GLASS,
    SERVICE_PASSWORD,
    Slapd,
    openldap_settings,
    slapd_missing,
    start_slapd,
)

from pamcore.core import Pamcore
from pamcore.model import Role
from pamcore.plugins import PluginHost, build_plugin_host
from pamcore.testing import builders


@pytest.fixture
def plugin_host() -> PluginHost:
    host = build_plugin_host(strict=True, entry_points=False)
    host.register(pamcore_ldap.plugin, "ldap")
    return host


@pytest.fixture
def slapd(tmp_path: Path) -> Iterator[Slapd]:
    if missing := slapd_missing():
        pytest.skip(missing)
    folder = tmp_path / "slapd"
    folder.mkdir()
    server = start_slapd(folder)
    yield server
    server.stop()


@pytest.fixture
def ldap_core(core: Pamcore, slapd: Slapd) -> Pamcore:
    """``core`` pointed at ``slapd``, the service password in its vault, and a local
    break-glass administrator ``root`` the directory does not know."""
    core.config.plugin_settings["ldap"] = openldap_settings(slapd)
    with core.unit() as db:
        core.vault.store(db, SERVICE_PASSWORD, name="ldap-service")
        builders.make_user(db, "root", Role.ADMIN, password=BREAK_GLASS)
    return core
