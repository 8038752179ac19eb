"""The plugin host: loading and failures, strict mode, and how the façade combines answers.

Plugins here are small in-process classes or real files; installed entry points are faked
by replacing ``importlib.metadata.entry_points`` as ``pamcore.plugins`` calls it, with
entry points that import real modules written to a temporary folder.
"""

from __future__ import annotations

import importlib.metadata
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
import flask
import pluggy
import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, select

from pamcore import hookimpl
from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError
from pamcore.model import ActivitySession, Base, User
from pamcore.plugins import PluginHost, build_plugin_host
from pamcore.registry import (
    ActionType,
    AuthResult,
    PasswordDisplayDecision,
    ProtocolHandler,
    RequestProblem,
    ResourceSetting,
)
from pamcore.services import scheduler
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import T0, make_core
from pamcore.testing import builders as b

# -- helpers ----------------------------------------------------------------------------------


def bare_host(strict: bool = False) -> PluginHost:
    """No built-ins and no entry points: only what a test registers."""
    return PluginHost(strict=strict)


def fake_entry_points(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, modules: dict[str, str]
) -> None:
    """Write each module to ``tmp_path`` and offer it as an installed ``pamcore`` plugin."""
    for name, source in modules.items():
        (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    eps = [importlib.metadata.EntryPoint(n, n, "pamcore") for n in modules]

    def entry_points(**params: Any) -> list[importlib.metadata.EntryPoint]:
        return [ep for ep in eps if ep.group == params.get("group")]

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)


GOOD_PLUGIN = """
from pamcore import hookimpl
from pamcore.registry import ProtocolHandler

@hookimpl
def pamcore_register_protocols(register):
    register(ProtocolHandler(name="fake", default_port=4999))
"""
BROKEN_PLUGIN = "raise RuntimeError('boom at import')\n"


@pytest.fixture
def sqlite_core(tmp_path: Path) -> Any:
    """A core on SQLite whose host has the built-ins only; tests register what they need."""

    def build(host: PluginHost) -> Pamcore:
        url = f"sqlite:///{tmp_path / 'host.db'}"
        engine = create_engine(url)
        Base.metadata.create_all(engine)
        engine.dispose()
        instance = tmp_path / "instance"
        instance.mkdir(exist_ok=True)
        return make_core(instance, url, FrozenClock(T0), host)

    return build


def seed(core: Pamcore) -> None:
    with core.unit() as db:
        alice = b.make_user(db, "alice")
        resource = b.make_resource(db, "db01")
        cred = b.make_credential(
            core, db, "db01 app", "app", password="App-pw-123", resource=resource
        )
        activity = b.make_activity(db, "Check DB", credential=cred)
        profile = b.make_profile(db, "standard")
        b.make_policy(db, "dbas", profile, [activity], [resource], [alice])


def request_session(core: Pamcore) -> int:
    with core.unit() as db:
        alice = db.scalar(select(User).where(User.username == "alice"))
        assert alice is not None
        return create_session(core, db, alice, SessionRequest("Check DB", ("db01",))).id


# -- loading ----------------------------------------------------------------------------------


def test_plugin_whose_import_raises_is_recorded_and_others_load(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    fake_entry_points(monkeypatch, tmp_path, {"broken_ep": BROKEN_PLUGIN, "good_ep": GOOD_PLUGIN})
    host = build_plugin_host(strict=False)
    [failure] = host.failures
    assert (failure.name, failure.stage) == ("broken_ep", "load")
    assert failure.error == "RuntimeError: boom at import"
    assert "fake" in host.hooks.protocols()
    assert "good_ep" in {i.name for i in host.plugin_infos()}


@pytest.mark.parametrize("how", ["argument", "environment"])
def test_strict_mode_raises_configuration_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, how: str
) -> None:
    fake_entry_points(monkeypatch, tmp_path, {"broken_ep": BROKEN_PLUGIN})
    if how == "environment":
        monkeypatch.setenv("PAMCORE_STRICT_PLUGINS", "1")
    with pytest.raises(ConfigurationError, match="plugin broken_ep failed at load: RuntimeError"):
        build_plugin_host(strict=True if how == "argument" else None)


def test_plugins_dir_file_is_loaded_and_a_broken_one_recorded(tmp_path: Path) -> None:
    (tmp_path / "site_rules.py").write_text(GOOD_PLUGIN)
    (tmp_path / "typo.py").write_text("def broken(:\n")
    host = build_plugin_host(strict=False, entry_points=False, plugins_dir=tmp_path)
    info = {i.name: i for i in host.plugin_infos()}["site_rules"]
    assert info.source == str(tmp_path / "site_rules.py")
    assert info.hooks == ["pamcore_register_protocols"]
    assert [(f.name, f.stage) for f in host.failures] == [("typo", "load")]
    assert host.failures[0].error.startswith("SyntaxError")


def test_protocol_registered_twice_names_both_plugins() -> None:
    def protocol_plugin(port: int) -> object:
        class Plugin:
            @hookimpl
            def pamcore_register_protocols(self, register: Callable[..., None]) -> None:
                register(ProtocolHandler(name="tcp", default_port=port))

        return Plugin()

    host = bare_host()
    host.register(protocol_plugin(1), name="first_tcp")
    host.register(protocol_plugin(2), name="second_tcp")
    assert list(host.hooks.protocols()) == ["tcp"]
    [failure] = host.failures
    assert failure.stage == "pamcore_register_protocols"
    both = f"{failure.name} {failure.error}"
    assert "first_tcp" in both
    assert "second_tcp" in both


def test_registration_hook_that_raises_is_recorded_and_strict_raises() -> None:
    class Bad:
        @hookimpl
        def pamcore_register_actions(self, register: Callable[..., None]) -> None:
            raise ValueError("no such runner")

    host = bare_host()
    host.register(Bad(), name="bad_actions")
    assert host.hooks.actions() == {}
    assert [(f.name, f.stage) for f in host.failures] == [
        ("bad_actions", "pamcore_register_actions")
    ]
    strict = bare_host(strict=True)
    strict.register(Bad(), name="bad_actions")
    with pytest.raises(ConfigurationError, match="bad_actions failed at pamcore_register_actions"):
        strict.hooks.actions()


def test_actions_and_resource_settings_registries() -> None:
    class Plugin:
        @hookimpl
        def pamcore_register_actions(self, register: Callable[..., None]) -> None:
            register(ActionType(name="touch", description="touch a file", run=lambda ctx: None))

        @hookimpl
        def pamcore_register_resource_settings(self, register: Callable[..., None]) -> None:
            register(ResourceSetting(plugin="p", key="k", help="h", parse=int))

    host = bare_host()
    host.register(Plugin(), name="registrations")
    assert list(host.hooks.actions()) == ["touch"]
    assert host.hooks.resource_settings()[("p", "k")].parse("7") == 7


# -- notifications are isolated ------------------------------------------------------------


def test_notification_that_raises_is_isolated_and_the_service_succeeds(sqlite_core: Any) -> None:
    seen: list[str] = []

    class Loud:
        @hookimpl
        def pamcore_audit_event(self, event: Any) -> None:
            raise RuntimeError("SIEM unreachable")

        @hookimpl
        def pamcore_on_session_available(self, session: ActivitySession) -> None:
            raise RuntimeError("chat down")

    class Quiet:
        @hookimpl
        def pamcore_audit_event(self, event: Any) -> None:
            seen.append(event.action)

        @hookimpl
        def pamcore_on_session_available(self, session: ActivitySession) -> None:
            seen.append(f"available #{session.id}")

    host = build_plugin_host(strict=True, entry_points=False)  # even strict mode isolates
    host.register(Quiet(), name="quiet")
    host.register(Loud(), name="loud")
    core = sqlite_core(host)
    seed(core)
    session_id = request_session(core)
    assert scheduler.tick(core).activated == [session_id]
    with core.reader() as db:
        assert db.get(ActivitySession, session_id).status == "available"  # type: ignore[union-attr]
    assert "session.requested" in seen
    assert f"available #{session_id}" in seen
    stages = {(f.name, f.stage) for f in host.failures}
    assert stages == {("loud", "notify")}
    assert {f.error for f in host.failures} == {
        "RuntimeError: SIEM unreachable",
        "RuntimeError: chat down",
    }


def test_every_notification_reaches_every_plugin() -> None:
    calls: list[str] = []

    class Listener:
        @hookimpl
        def pamcore_on_approval_decided(self, session: Any, approval: Any) -> None:
            calls.append("decided")

        @hookimpl
        def pamcore_on_approval_escalated(self, session: Any, tier: Any) -> None:
            calls.append("escalated")

        @hookimpl
        def pamcore_on_session_due(self, session: Any) -> None:
            calls.append("due")

    host = bare_host()
    host.register(Listener(), name="one")
    host.register(Listener(), name="two")
    hooks, s = host.hooks, object()
    hooks.on_approval_decided(s, object())  # type: ignore[arg-type]
    hooks.on_approval_escalated(s, object())  # type: ignore[arg-type]
    hooks.on_session_due(s)  # type: ignore[arg-type]
    assert calls == [c for c in ["decided", "escalated", "due"] for _ in range(2)]


def test_plugin_registered_after_the_host_is_built_adds_its_hooks() -> None:
    """``pamcore_addhooks`` is historic: a plugin registered late still adds its specs, and
    an implementation registered before them is then checked and called through ``relay``."""
    hookspec = pluggy.HookspecMarker("pamcore")

    class GreetingSpecs:
        @hookspec(firstresult=True)
        def pamcore_echo_greeting(self, name: str) -> str | None:
            """A greeting for ``name``."""

    class Echo:
        @hookimpl
        def pamcore_addhooks(self, pluginmanager: pluggy.PluginManager) -> None:
            pluginmanager.add_hookspecs(GreetingSpecs)

    class Greeter:
        @hookimpl
        def pamcore_echo_greeting(self, name: str) -> str:
            return f"hello {name}"

    host = bare_host()
    host.register(Greeter(), name="greeter")  # before anyone specified its hook
    assert not host.hooks.relay.pamcore_echo_greeting.has_spec()
    host.register(Echo(), name="echo")
    assert host.hooks.relay.pamcore_echo_greeting.has_spec()
    assert host.hooks.relay.pamcore_echo_greeting(name="ada") == "hello ada"


# -- decisions: deny wins, unions, merges -------------------------------------------------


def answering(hook: str, answer: Any) -> object:
    """A plugin whose one hook returns ``answer`` whatever it is asked."""

    def impl(self: object, **kwargs: Any) -> Any:
        return answer

    impl.__name__ = hook
    return type("Answer", (), {hook: hookimpl(impl)})()


def host_with(hook: str, *answers: Any) -> PluginHost:
    host = bare_host()
    for n, answer in enumerate(answers):
        host.register(answering(hook, answer), name=f"p{n}")
    return host


def test_password_display_deny_wins_and_shortest_window() -> None:
    hook = "pamcore_password_display_policy"
    allow_60, allow_10 = PasswordDisplayDecision(True, 60), PasswordDisplayDecision(True, 10)
    refuse = PasswordDisplayDecision(False, reason="change freeze")
    s, v = object(), object()
    assert host_with(hook, allow_60, refuse).hooks.password_display(s, v, "view") == refuse  # type: ignore[arg-type]
    assert host_with(hook, allow_60, allow_10).hooks.password_display(s, v, "copy").seconds == 10  # type: ignore[arg-type]
    nobody = host_with(hook, None).hooks.password_display(s, v, "view")  # type: ignore[arg-type]
    assert not nobody.allow
    assert nobody.reason == "no plugin allows password display"


def test_approval_veto_deny_wins() -> None:
    hook = "pamcore_approval_veto"
    s, a = object(), object()
    assert host_with(hook, None, "on holiday", None).hooks.approval_veto(s, a) == "on holiday"  # type: ignore[arg-type]
    assert host_with(hook, None, None).hooks.approval_veto(s, a) is None  # type: ignore[arg-type]


def test_approvers_is_the_union_without_duplicates() -> None:
    carol, dave, erin = (
        User(id=i, username=n) for i, n in [(1, "carol"), (2, "dave"), (3, "erin")]
    )
    host = host_with("pamcore_approvers", [dave, carol], [carol, erin], None)
    assert [u.username for u in host.hooks.approvers(object(), None)] == ["carol", "dave", "erin"]  # type: ignore[arg-type]


def test_approval_required_if_any_plugin_says_so() -> None:
    s = object()
    assert host_with("pamcore_approval_required", None, True).hooks.approval_required(s)  # type: ignore[arg-type]
    assert not host_with("pamcore_approval_required", None, False).hooks.approval_required(s)  # type: ignore[arg-type]


def test_validate_session_request_collects_every_problem() -> None:
    one, two = RequestProblem("ticket", "bad format"), RequestProblem("notes", "too vague")
    host = host_with("pamcore_validate_session_request", [one], None, [two])
    problems = host.hooks.validate_session_request(User(username="a"), "x", ["db01"], "", "T")
    assert sorted(p.field for p in problems) == ["notes", "ticket"]


def test_authenticate_is_tri_state_first_answer_wins() -> None:
    ldap_user = User(username="bob")
    host = host_with("pamcore_authenticate", AuthResult(True, user=ldap_user), None)
    result = host.hooks.authenticate(None, None, "bob", "pw", {})  # type: ignore[arg-type]
    assert result is not None and result.user is ldap_user
    assert (
        host_with("pamcore_authenticate", None).hooks.authenticate(None, None, "x", "y", {}) is None
    )  # type: ignore[arg-type]


# -- extension points -------------------------------------------------------------------------


def command_plugin(name: str) -> object:
    @click.command(name)
    def command() -> None:
        click.echo(f"hello from {name}")

    class Plugin:
        @hookimpl
        def pamcore_register_commands(self, register: Callable[..., None]) -> None:
            register(command)

    return Plugin()


def test_register_commands_adds_a_command_and_refuses_a_clash(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from pamcore.cli import main
    from pamcore.cli.context import CliContext

    host = build_plugin_host(strict=False, entry_points=False)
    host.register(command_plugin("hello"), name="greeter")
    host.register(command_plugin("users"), name="usurper")
    monkeypatch.setattr(main, "build_plugin_host", lambda: host)
    cli = main.build_cli()
    result = CliRunner().invoke(cli, ["hello"], obj=CliContext(instance=tmp_path))
    assert result.exit_code == 0, result.output
    assert result.output == "hello from hello\n"
    from pamcore.cli.users import users

    assert cli.get_command(click.Context(cli), "users") is users  # the core's command stays
    [failure] = host.failures
    assert failure.name == "users"
    assert failure.error == "ConfigurationError: command 'users' already exists"


def test_register_blueprints_adds_routes_and_isolates_a_broken_plugin() -> None:
    blueprint = flask.Blueprint("hello_bp", __name__)
    blueprint.add_url_rule("/hello", "hello", lambda: "hello from a plugin")

    class Good:
        @hookimpl
        def pamcore_register_blueprints(self, register: Callable[..., None]) -> None:
            register(blueprint, url_prefix="/x")

    class Broken:
        @hookimpl
        def pamcore_register_blueprints(self, register: Callable[..., None]) -> None:
            raise ImportError("flask-extra missing")

    host = bare_host()
    host.register(Good(), name="good_web")
    host.register(Broken(), name="broken_web")
    app = flask.Flask("test")
    host.hooks.register_blueprints(app)
    assert app.test_client().get("/x/hello").data == b"hello from a plugin"
    assert [(f.name, f.stage) for f in host.failures] == [
        ("broken_web", "pamcore_register_blueprints")
    ]


def test_trace_env_writes_hook_calls_to_the_log(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PAMCORE_TRACE_HOOKS", "1")
    host = host_with("pamcore_approval_veto", "no")
    with caplog.at_level(logging.DEBUG, logger="pamcore.plugins"):
        host.hooks.approval_veto(object(), object())  # type: ignore[arg-type]
    traced = [r.getMessage() for r in caplog.records if r.name == "pamcore.plugins"]
    assert any("pamcore_approval_veto" in m for m in traced), traced


def test_no_trace_without_the_env(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("PAMCORE_TRACE_HOOKS", raising=False)
    host = host_with("pamcore_approval_veto", "no")
    with caplog.at_level(logging.DEBUG, logger="pamcore.plugins"):
        host.hooks.approval_veto(object(), object())  # type: ignore[arg-type]
    assert not [r for r in caplog.records if "pamcore_approval_veto" in r.getMessage()]
