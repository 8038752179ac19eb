"""The ticket validator through the real create-session service, on SQLite and PostgreSQL."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError, ValidationError
from pamcore.model import User
from pamcore.plugins import build_plugin_host
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import _pg_template, clock, core, db_url, plugin_host  # noqa: F401
from pamcore.testing import builders as b

PLUGIN_FILE = Path(__file__).resolve().parents[1] / "src" / "pamcore_ticket_validator" / "plugin.py"


def _load_plugin() -> ModuleType:
    """Loaded from its file, as a plugins folder would, so the tests do not depend on the
    distribution being installed (the ``core`` fixture loads no entry points anyway)."""
    spec = importlib.util.spec_from_file_location("ticket_validator_example", PLUGIN_FILE)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ticket_plugin = _load_plugin()


@pytest.fixture
def world(core: Pamcore) -> Iterator[Pamcore]:  # noqa: F811
    """alice may check db01; the plugin is registered in-process and removed afterwards."""
    registered = core.plugins.register(ticket_plugin, name="ticket_validator_test")
    try:
        with core.unit() as db:
            alice = b.make_user(db, "alice")
            resource = b.make_resource(db, "db01")
            activity = b.make_activity(db, "Check DB")
            profile = b.make_profile(db, "standard")
            b.make_policy(db, "dbas", profile, [activity], [resource], [alice])
        yield core
    finally:
        core.plugins.unregister(registered)


def request(pam: Pamcore, ticket: str) -> int:
    with pam.unit() as db:
        alice = db.scalar(select(User).where(User.username == "alice"))
        assert alice is not None
        session = create_session(
            pam, db, alice, SessionRequest("Check DB", ("db01",), ticket=ticket)
        )
        return session.id


def test_well_formed_ticket_is_accepted(world: Pamcore) -> None:
    assert request(world, "CHG0012345") > 0


def test_no_ticket_is_left_to_the_profile(world: Pamcore) -> None:
    assert request(world, "") > 0


def test_malformed_ticket_is_refused_with_an_example(world: Pamcore) -> None:
    with pytest.raises(ValidationError) as refused:
        request(world, "T-42")
    assert refused.value.field == "ticket"
    assert refused.value.reason == (
        "'T-42' is not a ticket number: INC, CHG or REQ followed by 6 to 10 digits, e.g. CHG0012345"
    )


def test_pattern_from_the_environment(world: Pamcore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ticket_plugin.PATTERN_ENV, r"^JIRA-\d+$")
    assert request(world, "JIRA-7") > 0
    with pytest.raises(ValidationError, match=r"it must match \^JIRA-\\d\+\$"):
        request(world, "CHG0012345")


def test_broken_pattern_names_the_variable(world: Pamcore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ticket_plugin.PATTERN_ENV, "([")
    with pytest.raises(ConfigurationError, match="PAMCORE_TICKET_PATTERN is not a valid"):
        request(world, "CHG0012345")


def test_works_as_a_plugins_dir_file(tmp_path: Path) -> None:
    shutil.copy(PLUGIN_FILE, tmp_path / "ticket_rules.py")
    host = build_plugin_host(strict=True, entry_points=False, plugins_dir=tmp_path)
    assert "ticket_rules" in {info.name for info in host.plugin_infos()}
    problems = host.hooks.validate_session_request(User(username="a"), "x", ["db01"], "", "nope")
    assert [p.field for p in problems] == ["ticket"]
