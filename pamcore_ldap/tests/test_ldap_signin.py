"""Directory sign-in against a real slapd, on SQLite and PostgreSQL: users created at their
first sign-in with their mapped role and groups, refreshed at every sign-in, refused once
the directory disables or deletes them (their sessions canceled), and a directory outage
that answers within the timeout while the local break-glass admin still signs in."""

from __future__ import annotations

import logging
import socket
import time
from pathlib import Path

import asyncssh
import pytest
from click.testing import CliRunner
from pamcore_ldap.cli import ldap_group
from pamcore_ldap.settings import ldap_settings
from pamcore_ssh.listener import ProxyListener
from slapd_peer import (
    ADMINS,
    BASE,
    BREAK_GLASS,
    DBA,
    DISABLED,
    OPS,
    PASSWORDS,
    SERVICE_DN,
    SERVICE_PASSWORD,
    Slapd,
    make_tls,
    openldap_settings,
    people_dn,
)
from sqlalchemy import select

from pamcore.cli.context import CliContext
from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, ConfigurationError
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, AuditEvent, Role, User
from pamcore.services import directory
from pamcore.testing import LoopThread, builders
from pamcore.web.app import create_app
from pamcore_ssh import plugin as ssh_plugin


def sign_in(core: Pamcore, username: str, password: str) -> User:
    with core.unit() as db:
        user = directory.authenticate(core, db, username, password)
        db.flush()
        db.expunge(user)
        return user


def refused(core: Pamcore, username: str, password: str) -> str:
    with pytest.raises(AuthenticationFailed) as failed, core.unit() as db:
        directory.authenticate(core, db, username, password)
    return str(failed.value)


def looked_up(core: Pamcore, username: str) -> tuple[User, list[str]]:
    with core.reader() as db:
        user = directory.get_user(db, username)
        groups = [g.name for g in user.groups]
        db.expunge(user)
    return user, groups


def audit_actions(core: Pamcore, target: str) -> list[str]:
    with core.reader() as db:
        return list(
            db.scalars(
                select(AuditEvent.action).where(AuditEvent.target == target).order_by(AuditEvent.id)
            )
        )


def test_a_new_directory_user_is_created_with_mapped_role_and_groups(ldap_core: Pamcore) -> None:
    bob = sign_in(ldap_core, "Bob", PASSWORDS["bob"])
    assert (bob.username, bob.source, bob.role) == ("bob", "ldap", Role.APPROVER)
    assert bob.password_hash is None  # the directory keeps the password
    user, groups = looked_up(ldap_core, "bob")
    # DBA directly, Operations through DBA's membership of ops (the walk one level up)
    assert groups == ["DBA", "Operations"]
    assert (user.display_name, user.email) == ("Bob Dba", "bob@example.org")
    assert sign_in(ldap_core, "alice", PASSWORDS["alice"]).role == Role.ADMIN
    assert sign_in(ldap_core, "dave", PASSWORDS["dave"]).role == Role.USER
    assert audit_actions(ldap_core, "bob") == ["user.provisioned", "auth.succeeded"]


def test_wrong_or_empty_password_and_unknown_names_are_refused(ldap_core: Pamcore) -> None:
    assert refused(ldap_core, "bob", "not-his") == "wrong username or password"
    # an empty password would be an unauthenticated bind, which LDAP lets through
    assert refused(ldap_core, "bob", "") == "wrong username or password"
    assert refused(ldap_core, "nobody", "x") == "wrong username or password"
    # filter syntax in a name is data (RFC 4515 escaping), not a wildcard
    assert refused(ldap_core, "*", PASSWORDS["bob"]) == "wrong username or password"
    assert refused(ldap_core, "b*)(uid=*", PASSWORDS["bob"]) == "wrong username or password"
    with ldap_core.reader() as db:
        assert [u.username for u in directory.list_users(db)] == ["root"]


def test_group_changes_apply_at_the_next_sign_in(ldap_core: Pamcore, slapd: Slapd) -> None:
    sign_in(ldap_core, "bob", PASSWORDS["bob"])
    with ldap_core.unit() as db:  # a pamcore group of its own: the directory leaves it be
        builders.make_group(db, "On-call", [directory.get_user(db, "bob")])
    slapd.set_members(DBA, [people_dn("carol")])
    slapd.set_members(ADMINS, [people_dn("alice"), people_dn("bob")])
    bob = sign_in(ldap_core, "bob", PASSWORDS["bob"])
    assert bob.role == Role.ADMIN
    assert looked_up(ldap_core, "bob")[1] == ["On-call"]
    with ldap_core.reader() as db:
        event = db.scalars(select(AuditEvent).where(AuditEvent.action == "user.refreshed")).one()
        assert event.details["role"] == ["approver", "admin"]
        assert sorted(event.details["left"]) == ["DBA", "Operations"]


def test_a_disabled_directory_user_is_refused_and_their_sessions_canceled(
    ldap_core: Pamcore, slapd: Slapd
) -> None:
    sign_in(ldap_core, "bob", PASSWORDS["bob"])
    with ldap_core.unit() as db:
        bob = directory.get_user(db, "bob")
        web01 = builders.make_resource(db, "web01")
        activity = builders.make_activity(db, "Maintenance")
        profile = builders.make_profile(db, "Standard")
        scheduled = builders.make_sessions(db, 1, bob, activity, profile, [web01], ldap_core.now())
    slapd.set_control("bob", DISABLED)
    assert (
        refused(ldap_core, "bob", PASSWORDS["bob"]) == "this account is disabled in the directory"
    )
    user, _ = looked_up(ldap_core, "bob")
    assert not user.is_active
    with ldap_core.reader() as db:
        session = db.get(ActivitySession, scheduled[0])
        assert session is not None and session.status == Status.CANCELED
        assert "disabled in the directory" in session.outcome_reason
    # disabled from the start: refused, and never created
    assert (
        refused(ldap_core, "carol", PASSWORDS["carol"])
        == "this account is disabled in the directory"
    )
    with ldap_core.reader() as db:
        assert directory.user_source(db, "carol") is None


def test_a_deleted_directory_user_is_refused_and_disabled(ldap_core: Pamcore, slapd: Slapd) -> None:
    sign_in(ldap_core, "dave", PASSWORDS["dave"])
    slapd.delete("dave")
    assert refused(ldap_core, "dave", PASSWORDS["dave"]) == "wrong username or password"
    assert not looked_up(ldap_core, "dave")[0].is_active
    assert "user.disabled" in audit_actions(ldap_core, "dave")


def test_directory_outage_is_a_clear_refusal_within_the_timeout(
    ldap_core: Pamcore, slapd: Slapd
) -> None:
    slapd.stop()
    started = time.monotonic()
    reason = refused(ldap_core, "bob", PASSWORDS["bob"])
    assert time.monotonic() - started < 2
    assert reason.startswith(f"the directory ({slapd.ldaps_url}) is not answering")
    # the break-glass admin is local: the directory is not even asked
    assert sign_in(ldap_core, "root", BREAK_GLASS).role == Role.ADMIN


def test_a_directory_that_accepts_but_never_answers_times_out(ldap_core: Pamcore) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever speaks
        url = f"ldaps://127.0.0.1:{silent.getsockname()[1]}"
        ldap_core.config.plugin_settings["ldap"]["url"] = url
        started = time.monotonic()
        reason = refused(ldap_core, "bob", PASSWORDS["bob"])
        elapsed = time.monotonic() - started
    assert reason.startswith(f"the directory ({url}) is not answering")
    assert elapsed < 2 * 2 + 1, elapsed  # timeout = 2 s, for the connection and the bind


def test_the_server_certificate_is_verified(ldap_core: Pamcore, tmp_path: Path) -> None:
    other = tmp_path / "other-ca"
    other.mkdir()
    ldap_core.config.plugin_settings["ldap"]["ca_file"] = str(make_tls(other))
    assert "is not answering" in refused(ldap_core, "bob", PASSWORDS["bob"])
    with ldap_core.reader() as db:
        assert directory.user_source(db, "bob") is None


def test_active_directory_attributes_over_starttls(ldap_core: Pamcore, slapd: Slapd) -> None:
    ldap_core.config.plugin_settings["ldap"] = openldap_settings(
        slapd,
        url=slapd.ldap_url,
        start_tls=True,
        user_filter="(sAMAccountName={username})",
        groups_from="memberOf",
        nested_depth=0,
    )
    bob = sign_in(ldap_core, "bob", PASSWORDS["bob"])
    assert bob.role == Role.APPROVER
    assert looked_up(ldap_core, "bob")[1] == ["DBA", "Operations"]
    assert (
        refused(ldap_core, "carol", PASSWORDS["carol"])
        == "this account is disabled in the directory"
    )


def test_no_password_reaches_the_logs_or_the_audit_trail(
    ldap_core: Pamcore, slapd: Slapd, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    sign_in(ldap_core, "bob", PASSWORDS["bob"])
    refused(ldap_core, "bob", "Wrong-Pw-Guess-1")
    ldap_core.config.plugin_settings["ldap"]["service_dn"] = f"cn=nobody,{BASE}"
    assert "refused the service account" in refused(ldap_core, "bob", PASSWORDS["bob"])
    ldap_core.config.plugin_settings["ldap"]["service_dn"] = SERVICE_DN
    slapd.stop()
    refused(ldap_core, "bob", PASSWORDS["bob"])
    assert f"directory {slapd.ldaps_url}: " in caplog.text  # the outage is logged
    with ldap_core.reader() as db:
        trail = repr([(e.action, e.details) for e in db.scalars(select(AuditEvent))])
    for secret in (SERVICE_PASSWORD, PASSWORDS["bob"], "Wrong-Pw-Guess-1"):
        assert secret not in caplog.text
        assert secret not in trail


def test_local_users_are_left_to_the_local_password(ldap_core: Pamcore) -> None:
    with ldap_core.unit() as db:  # a local account named like a directory one
        builders.make_user(db, "alice", password="Local-Alice-Pw-5")
    assert sign_in(ldap_core, "alice", "Local-Alice-Pw-5").source == "local"
    assert refused(ldap_core, "alice", PASSWORDS["alice"]) == "wrong username or password"


def test_settings_are_checked(ldap_core: Pamcore, slapd: Slapd) -> None:
    config = ldap_core.config
    for changes, words in [
        ({"url": slapd.ldap_url}, "url: must be ldaps://HOST, or ldap://HOST with start_tls"),
        ({"timeout": 0}, "timeout: must be a number of seconds"),
        ({"roles": {OPS: "boss"}}, "'boss' is not one of user, approver, admin, auditor"),
        ({"user_filter": "(uid=bob)"}, "user_filter: must contain {username}"),
        ({"service_password": "x"}, "service_password: is not a setting"),
    ]:
        config.plugin_settings["ldap"] = openldap_settings(slapd, **changes)
        with pytest.raises(ConfigurationError, match=words.replace("(", r"\(")):
            ldap_settings(config)
    config.plugin_settings.pop("ldap")
    assert ldap_settings(config) is None
    assert refused(ldap_core, "bob", PASSWORDS["bob"]) == "wrong username or password"


def test_cli_shows_a_user_and_syncs_everyone(ldap_core: Pamcore, slapd: Slapd) -> None:
    def run(*args: str, code: int = 0) -> str:
        context = CliContext(instance=None)
        context.set_core(ldap_core)
        result = CliRunner().invoke(ldap_group, list(args), obj=context)
        assert result.exit_code == code, (result.output, result.exception)
        return result.output

    shown = run("test", "bob", "--json")
    assert '"dn": "uid=bob,ou=people,dc=example,dc=org"' in shown
    assert '"role": "approver"' in shown and OPS in shown
    for name in ("alice", "bob", "dave"):
        sign_in(ldap_core, name, PASSWORDS[name])
    slapd.delete("dave")
    slapd.set_control("alice", DISABLED)
    slapd.set_members(DBA, [people_dn("carol")])
    synced = run("sync", "--json")
    assert '"refreshed": [\n    "bob"\n  ]' in synced
    assert not looked_up(ldap_core, "alice")[0].is_active
    assert not looked_up(ldap_core, "dave")[0].is_active
    assert looked_up(ldap_core, "bob")[1] == []


def test_the_ssh_proxy_signs_directory_users_in_with_their_directory_password(
    ldap_core: Pamcore,
) -> None:
    """The SSH proxy signs in through the same service: bob, never seen before, gets
    past the password with his directory one and is told what he lacks (a session)."""
    ldap_core.plugins.register(ssh_plugin, "ssh")
    with ldap_core.unit() as db:  # the policy names the group the directory's dba maps to
        web01 = builders.make_resource(db, "web01", protocols={"ssh": 22})
        activity = builders.make_activity(db, "Maintenance")
        profile = builders.make_profile(db, "Standard")
        dba = builders.make_group(db, "DBA")
        builders.make_policy(db, "dba", profile, [activity], [web01], groups=[dba])

    async def connect(password: str) -> str | None:
        try:
            async with asyncssh.connect(
                "127.0.0.1",
                port,
                username="bob+web01",
                password=password,
                known_hosts=None,
                preferred_auth="password",
                client_keys=None,
                agent_path=None,
            ) as conn:
                return str((await conn.run("true", check=False)).stderr)
        except asyncssh.PermissionDenied:
            return None

    loop = LoopThread()
    listener = ProxyListener(ldap_core, "127.0.0.1", 0)
    loop.run(listener.start())
    port = listener.port
    try:
        assert loop.run(connect("not-his")) is None
        said = loop.run(connect(PASSWORDS["bob"]))
    finally:
        loop.run(listener.stop())
        loop.close()
    assert said is not None and "you have no session for web01" in said
    assert looked_up(ldap_core, "bob")[0].source == "ldap"


def test_the_dashboard_signs_a_directory_user_in_and_says_when_the_directory_is_down(
    ldap_core: Pamcore, slapd: Slapd
) -> None:
    app = create_app(ldap_core, {"TESTING": True, "WTF_CSRF_ENABLED": False})
    client = app.test_client()
    signed_in = client.post("/login", data={"username": "alice", "password": PASSWORDS["alice"]})
    assert signed_in.status_code == 303
    assert client.get("/active").status_code == 200  # not sent back to /login
    slapd.stop()
    refused_page = app.test_client().post(
        "/login", data={"username": "bob", "password": PASSWORDS["bob"]}
    )
    assert refused_page.status_code == 401
    assert b"is not answering" in refused_page.data
