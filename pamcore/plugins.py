"""The plugin host: one pluggy manager per core, loading, failures, and the typed façade.

Built-ins are ordinary plugins registered first (datasette's ``DEFAULT_PLUGINS``); installed
distributions come from the ``pamcore`` entry-point group, one at a time, so a broken one
is logged and recorded instead of taking the host down — unless strict mode
(``PAMCORE_STRICT_PLUGINS=1``, used by CI) asks for the error to be raised.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

from pamcore import hookspecs
from pamcore.errors import ConfigurationError, PamError
from pamcore.registry import (
    ActionType,
    AuthResult,
    PasswordDisplayDecision,
    ProtocolHandler,
    RequestProblem,
    ResourceSetting,
)

if TYPE_CHECKING:
    import click
    import flask
    from sqlalchemy.orm import Session

    from pamcore.core import Pamcore
    from pamcore.model import (
        ActivitySession,
        Approval,
        ApprovalTier,
        AuditEvent,
        User,
    )

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "pamcore"
STRICT_ENV = "PAMCORE_STRICT_PLUGINS"
TRACE_ENV = "PAMCORE_TRACE_HOOKS"

DEFAULT_PLUGINS = (
    "pamcore.defaults.approval",
    "pamcore.defaults.password_display",
    "pamcore.defaults.local_auth",
    "pamcore.defaults.actions",
)


def strict_from_env() -> bool:
    return os.environ.get(STRICT_ENV, "").lower() in {"1", "true", "yes", "on"}


@dataclass
class PluginFailure:
    """A plugin that could not be loaded or whose registration raised."""

    name: str
    stage: str
    error: str
    detail: str = ""


@dataclass
class InstancePrepared:
    """What one plugin prepared at ``pamcore init``, or why it could not."""

    plugin: str
    lines: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class PluginInfo:
    name: str
    version: str
    source: str
    hooks: list[str] = field(default_factory=list)


class PluginHost:
    """Owns the pluggy manager of one core instance and the registries built from it."""

    def __init__(self, strict: bool | None = None) -> None:
        self.strict = strict_from_env() if strict is None else strict
        self.pm = pluggy.PluginManager("pamcore")
        self.pm.add_hookspecs(hookspecs)
        self.pm.hook.pamcore_addhooks.call_historic(kwargs={"pluginmanager": self.pm})
        self.failures: list[PluginFailure] = []
        self._versions: dict[str, tuple[str, str]] = {}
        self.hooks = Hooks(self)
        if os.environ.get(TRACE_ENV):
            self.pm.trace.root.setwriter(lambda msg: log.debug("hook: %s", msg.rstrip()))
            self.pm.enable_tracing()

    # -- loading ---------------------------------------------------------------------------

    def load_defaults(self) -> None:
        for modname in DEFAULT_PLUGINS:
            self.pm.register(importlib.import_module(modname), name=modname)
            self._versions[modname] = (_core_version(), "built-in")

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Load every installed plugin, one by one; a failure is recorded, not fatal."""
        for ep in sorted(importlib.metadata.entry_points(group=group), key=lambda e: e.name):
            if self.pm.get_plugin(ep.name) is not None or self.pm.is_blocked(ep.name):
                continue
            try:
                plugin = ep.load()
                self.pm.register(plugin, name=ep.name)
            except Exception as exc:
                self._record(ep.name, "load", exc)
                continue
            dist = ep.dist
            self._versions[ep.name] = (
                dist.version if dist else "?",
                f"{dist.name if dist else '?'} (entry point)",
            )

    def load_plugins_dir(self, directory: Path) -> None:
        """Load each ``*.py`` file of an operator's plugins folder as a plugin."""
        for path in sorted(directory.glob("*.py")):
            name = f"plugins_dir.{path.stem}"
            try:
                spec = importlib.util.spec_from_file_location(name, path)
                assert spec and spec.loader
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
                self.pm.register(module, name=path.stem)
            except Exception as exc:
                sys.modules.pop(name, None)
                self._record(path.stem, "load", exc)
                continue
            self._versions[path.stem] = ("-", str(path))

    def register(self, plugin: object, name: str | None = None) -> str:
        """Register an in-process plugin object (tests, embedding applications)."""
        registered = self.pm.register(plugin, name=name)
        assert registered is not None
        self._versions[registered] = ("-", "in-process")
        self.hooks.reset()
        return registered

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self.hooks.reset()

    def _record(
        self, name: str, stage: str, exc: BaseException, *, strict_raises: bool = True
    ) -> PluginFailure:
        failure = PluginFailure(
            name=name,
            stage=stage,
            error=f"{type(exc).__name__}: {exc}",
            detail="".join(traceback.format_exception(exc)),
        )
        self.failures.append(failure)
        log.error("plugin %s failed at %s: %s", name, stage, failure.error)
        if self.strict and strict_raises:
            raise ConfigurationError(
                f"plugin {name} failed at {stage}: {failure.error} (strict plugin mode)"
            ) from exc
        return failure

    # -- introspection ---------------------------------------------------------------------

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            if plugin is None:
                continue
            version, source = self._versions.get(name, ("-", "in-process"))
            hooks = sorted(h.name for h in self.pm.get_hookcallers(plugin) or [])
            infos.append(PluginInfo(name=name, version=version, source=source, hooks=hooks))
        return sorted(infos, key=lambda i: (i.source != "built-in", i.name))

    def each_impl(self, hook_name: str) -> Iterator[tuple[str, Callable[..., Any]]]:
        """(plugin name, function) in pluggy's call order, for per-plugin isolation."""
        caller = getattr(self.pm.hook, hook_name)
        for impl in reversed(caller.get_hookimpls()):
            yield impl.plugin_name, impl.function

    def call_each(self, hook_name: str, stage: str, **kwargs: Any) -> list[Any]:
        """Call every implementation separately; one that raises is recorded and skipped."""
        results = []
        for plugin_name, function in self.each_impl(hook_name):
            try:
                result = function(**kwargs)
            except Exception as exc:
                # A notification never undoes what it reports, even in strict mode.
                self._record(plugin_name, stage, exc, strict_raises=False)
                continue
            if result is not None:
                results.append(result)
        return results


def _core_version() -> str:
    from pamcore import __version__

    return __version__


def build_plugin_host(
    strict: bool | None = None,
    *,
    entry_points: bool = True,
    plugins_dir: Path | None = None,
) -> PluginHost:
    """The one way a core gets its plugins: defaults, then installed, then a folder."""
    host = PluginHost(strict=strict)
    host.load_defaults()
    if entry_points:
        host.load_entry_points()
    if plugins_dir is not None and plugins_dir.is_dir():
        host.load_plugins_dir(plugins_dir)
    return host


class Hooks:
    """Typed façade over ``pm.hook``: one method per hook, combining answers as specified.

    Core code calls these methods and never ``pm.hook`` directly (tox's plugin manager).
    """

    def __init__(self, host: PluginHost) -> None:
        self._host = host
        self.reset()

    def reset(self) -> None:
        self._protocols: dict[str, ProtocolHandler] | None = None
        self._actions: dict[str, ActionType] | None = None
        self._settings: dict[tuple[str, str], ResourceSetting] | None = None

    @property
    def relay(self) -> pluggy.HookRelay:
        """The hooks that plugins added with ``pamcore_addhooks``, for their own façades;
        the core's hooks go through the methods below."""
        return self._host.pm.hook

    # -- registries ------------------------------------------------------------------------

    def _collect(self, hook_name: str, key: Callable[[Any], Any]) -> dict[Any, Any]:
        found: dict[Any, Any] = {}
        owners: dict[Any, str] = {}
        for plugin_name, function in self._host.each_impl(hook_name):
            staged: list[Any] = []
            try:
                function(register=staged.append)
            except Exception as exc:
                self._host._record(plugin_name, hook_name, exc)
                continue
            for item in staged:
                k = key(item)
                if k in found:
                    self._host._record(
                        plugin_name,
                        hook_name,
                        ConfigurationError(f"{k!r} is already registered by {owners[k]}"),
                    )
                    continue
                found[k] = item
                owners[k] = plugin_name
        return found

    def protocols(self) -> dict[str, ProtocolHandler]:
        if self._protocols is None:
            self._protocols = self._collect("pamcore_register_protocols", lambda p: p.name)
        return self._protocols

    def actions(self) -> dict[str, ActionType]:
        if self._actions is None:
            self._actions = self._collect("pamcore_register_actions", lambda a: a.name)
        return self._actions

    def resource_settings(self) -> dict[tuple[str, str], ResourceSetting]:
        if self._settings is None:
            self._settings = self._collect(
                "pamcore_register_resource_settings", lambda s: (s.plugin, s.key)
            )
        return self._settings

    def register_commands(self, group: click.Group) -> None:
        for command in self._collect("pamcore_register_commands", lambda c: c.name).values():
            if command.name in group.commands:
                self._host._record(
                    command.name or "?",
                    "pamcore_register_commands",
                    ConfigurationError(f"command '{command.name}' already exists"),
                )
                continue
            group.add_command(command)

    def register_blueprints(self, app: flask.Flask) -> None:
        for plugin_name, function in self._host.each_impl("pamcore_register_blueprints"):
            try:
                function(register=app.register_blueprint)
            except Exception as exc:
                self._host._record(plugin_name, "pamcore_register_blueprints", exc)

    # -- decisions -------------------------------------------------------------------------

    def validate_session_request(
        self,
        requester: User,
        activity_name: str,
        resource_names: list[str],
        notes: str,
        ticket: str,
    ) -> list[RequestProblem]:
        answers = self._host.pm.hook.pamcore_validate_session_request(
            requester=requester,
            activity_name=activity_name,
            resource_names=resource_names,
            notes=notes,
            ticket=ticket,
        )
        return [problem for answer in answers for problem in answer]

    def approval_required(self, session: ActivitySession) -> bool:
        return any(self._host.pm.hook.pamcore_approval_required(session=session))

    def approvers(self, session: ActivitySession, tier: ApprovalTier | None) -> list[User]:
        seen: dict[int, User] = {}
        for answer in self._host.pm.hook.pamcore_approvers(session=session, tier=tier):
            for user in answer:
                seen.setdefault(user.id, user)
        return sorted(seen.values(), key=lambda u: u.username)

    def approval_veto(self, session: ActivitySession, approver: User) -> str | None:
        """Deny wins: the first reason any plugin gives refuses the decision."""
        answers = self._host.pm.hook.pamcore_approval_veto(session=session, approver=approver)
        return answers[0] if answers else None

    def password_display(
        self, session: ActivitySession, viewer: User, purpose: str
    ) -> PasswordDisplayDecision:
        """Allowed only if some plugin allows and none refuses; the shortest window wins."""
        answers: list[PasswordDisplayDecision] = self._host.pm.hook.pamcore_password_display_policy(
            session=session, viewer=viewer, purpose=purpose
        )
        refusals = [a for a in answers if not a.allow]
        if refusals:
            return refusals[0]
        if not answers:
            return PasswordDisplayDecision(False, reason="no plugin allows password display")
        windows = [a.seconds for a in answers if a.seconds]
        return PasswordDisplayDecision(True, seconds=min(windows) if windows else 20)

    def authenticate(
        self, core: Pamcore, db: Session, username: str, password: str, factors: dict[str, Any]
    ) -> AuthResult | None:
        return self._host.pm.hook.pamcore_authenticate(
            core=core, db=db, username=username, password=password, factors=factors
        )

    # -- instance --------------------------------------------------------------------------

    def init_instance(self, core: Pamcore) -> list[InstancePrepared]:
        """One plugin at a time; a plugin that raises is reported under its name and the
        others still prepare theirs (strict mode too: the operator sees every problem)."""
        prepared = []
        for plugin_name, function in self._host.each_impl("pamcore_init_instance"):
            try:
                lines = function(core=core) or []
            except Exception as exc:
                failure = self._host._record(
                    plugin_name, "pamcore_init_instance", exc, strict_raises=False
                )
                error = str(exc) if isinstance(exc, PamError) else failure.error
                prepared.append(InstancePrepared(plugin_name, error=error))
                continue
            prepared.append(InstancePrepared(plugin_name, [str(line) for line in lines]))
        return prepared

    # -- notifications: each implementation isolated ------------------------------------------

    def on_approval_decided(self, session: ActivitySession, approval: Approval) -> None:
        self._host.call_each(
            "pamcore_on_approval_decided", "notify", session=session, approval=approval
        )

    def on_approval_escalated(self, session: ActivitySession, tier: ApprovalTier) -> None:
        self._host.call_each("pamcore_on_approval_escalated", "notify", session=session, tier=tier)

    def on_session_due(self, session: ActivitySession) -> None:
        self._host.call_each("pamcore_on_session_due", "notify", session=session)

    def on_session_available(self, session: ActivitySession) -> None:
        self._host.call_each("pamcore_on_session_available", "notify", session=session)

    def audit_event(self, event: AuditEvent) -> None:
        self._host.call_each("pamcore_audit_event", "notify", event=event)


__all__ = [
    "Hooks",
    "InstancePrepared",
    "PluginFailure",
    "PluginHost",
    "PluginInfo",
    "build_plugin_host",
]
