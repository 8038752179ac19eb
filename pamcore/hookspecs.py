"""Hook specifications: the API between the pamcore core and its plugins.

Every hook is prefixed ``pamcore_``. Plugins implement them with ``@pamcore.hookimpl`` and
are found through the ``pamcore`` entry-point group. The core never calls ``pm.hook``
directly: it goes through the typed façade :class:`pamcore.plugins.Hooks`, which also
combines security decisions (deny wins) so plugin order never decides them.

Conventions (after pytest's ``hookspec.py``):

* Registration hooks receive a ``register`` callable and return nothing.
* Decision hooks return ``None`` for "not mine"; every answer is collected.
* ``firstresult`` hooks say so: "Stops at first non-None result".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    from sqlalchemy.orm import Session

    from pamcore.core import Pamcore
    from pamcore.model import (
        ActivitySession,
        Approval,
        ApprovalTier,
        AuditEvent,
        User,
    )
    from pamcore.registry import (
        ActionType,
        AuthResult,
        PasswordDisplayDecision,
        ProtocolHandler,
        RequestProblem,
        ResourceSetting,
    )

hookspec = pluggy.HookspecMarker("pamcore")


# -- hooks of plugins -----------------------------------------------------------------------


@hookspec(historic=True)
def pamcore_addhooks(pluginmanager: pluggy.PluginManager) -> None:
    """Add a plugin's own hook specifications, for other plugins to implement.

    Called once for each plugin, when it is registered (historic, after pytest's
    ``pytest_addhooks``), so a plugin registered after the host was built gets it too.
    Call ``pluginmanager.add_hookspecs(module)``; name the hooks ``pamcore_<plugin>_...``
    and call them through :attr:`pamcore.plugins.Hooks.relay`.

    :param pluginmanager: the host's pluggy manager.
    """


# -- protocols ------------------------------------------------------------------------------


@hookspec
def pamcore_register_protocols(register: Callable[[ProtocolHandler], None]) -> None:
    """Register the protocols this plugin handles (``ssh``, ``rdp``, ``tcp``...).

    Called once when the plugin host is built. A protocol name registered twice is a
    configuration error naming both plugins.

    :param register: call it with a :class:`pamcore.registry.ProtocolHandler` per protocol.
    """


@hookspec
def pamcore_register_resource_settings(register: Callable[[ResourceSetting], None]) -> None:
    """Register the per-resource settings this plugin reads from ``resource.settings``.

    Called once at start-up. The admin CLI and pages use the registrations to validate and
    show settings (for instance the legacy-algorithms opt-in of the Cisco plugin).

    :param register: call it with a :class:`pamcore.registry.ResourceSetting` per setting.
    """


# -- instance -------------------------------------------------------------------------------


@hookspec
def pamcore_init_instance(core: Pamcore) -> list[str] | None:
    """Prepare this plugin's own files of an instance (keys, certificates) at ``pamcore init``.

    Called by ``pamcore init`` after the database is migrated, one plugin at a time, on a
    new instance and on every later run (upgrades run it again): create what is missing,
    keep what exists, check what the operator supplied. Write each file whole (beside, then
    rename) so a failure never leaves half a key. To refuse, raise a
    :class:`pamcore.errors.PamError` saying what to fix: it is printed as this plugin's
    line, the other plugins still run, and ``pamcore init`` exits non-zero so the operator
    runs it again once fixed. What ``pamcore init`` did before stays done.

    :param core: the instance's core (configuration, vault, database at the newest schema).
    :return: short lines saying what is ready, printed by ``pamcore init`` after the
        plugin's name (``rdp: proxy certificate SHA-256 AB:CD:...``), or ``None``.
    """


# -- activities -----------------------------------------------------------------------------


@hookspec
def pamcore_register_actions(register: Callable[[ActionType], None]) -> None:
    """Register pre- and post-session action types (create an ephemeral account, rotate a
    password, add to a group...).

    Called once at start-up. Activities refer to action types by name; an activity naming an
    unknown type fails at configuration time, not when the session starts, and so do
    parameters the type does not list or its ``check`` refuses (a credential that does not
    exist).

    :param register: call it with a :class:`pamcore.registry.ActionType` per type.
    """


# -- session requests and approval ---------------------------------------------------------


@hookspec
def pamcore_validate_session_request(
    requester: User, activity_name: str, resource_names: list[str], notes: str, ticket: str
) -> list[RequestProblem] | None:
    """Check a session request before it is created (ticket format, change windows...).

    Called by the create-session service after the core's own checks passed, for the web,
    CLI, API and DirectConnect alike. Every implementation's problems are collected; any
    problem rejects the request with the field and reason shown to the requester.

    :param requester: the user asking.
    :param activity_name: the activity's name.
    :param resource_names: names of the requested resources.
    :param notes: the notes as typed.
    :param ticket: the ticket number as typed (may be empty).
    :return: a list of :class:`pamcore.registry.RequestProblem`, or ``None``/``[]`` if fine.
    """


@hookspec
def pamcore_approval_required(session: ActivitySession) -> bool | None:
    """Say whether a new session needs approval beyond what its connection profile says.

    Called once when a session is created. Answers are collected; approval is required when
    the profile has approval tiers *or* any plugin returns ``True`` (a plugin can add a
    requirement, never waive the profile's). When a plugin requires approval for a profile
    with no tiers, the session waits until an admin approves it.

    :param session: the new session (status ``requested``), with activity, profile and
        resources loaded.
    :return: ``True`` to require approval, ``None`` (or ``False``) for no opinion.
    """


@hookspec
def pamcore_approvers(session: ActivitySession, tier: ApprovalTier | None) -> list[User] | None:
    """Name the users who may decide ``session`` at its current approval tier.

    Called by the approvals service when someone approves or denies, and to build approval
    queues. The union of every answer is the set of eligible approvers; the core's default
    plugin answers the tier's users and those of its groups' members who hold the approver
    or admin role, plus the profile's escalation approver once the tier has waited longer
    than the escalation delay.

    :param session: the session waiting for approval.
    :param tier: the current tier, or ``None`` when a plugin required approval on a profile
        without tiers.
    :return: users, or ``None`` for no opinion.
    """


@hookspec
def pamcore_approval_veto(session: ActivitySession, approver: User) -> str | None:
    """Refuse a particular approver's decision (self-approval, a rule of your own).

    Called after the approver was found eligible through :func:`pamcore_approvers`.
    Answers are collected and deny wins: any reason refuses the decision and is shown to
    the approver; ``None`` is no opinion. The core's default plugin refuses a requester
    deciding their own session unless the connection profile allows it, and inactive users.

    :param session: the session being decided.
    :param approver: the user trying to approve or deny.
    :return: a reason to refuse, in words for the approver, or ``None``.
    """


@hookspec
def pamcore_on_approval_decided(session: ActivitySession, approval: Approval) -> None:
    """Notify that an approver approved or denied ``session`` (Slack, e-mail, ticketing).

    Called after the decision is stored in the same unit of work; an exception here is
    logged and does not undo the decision.

    :param session: the session, with its status after the decision.
    :param approval: the stored decision.
    """


@hookspec
def pamcore_on_approval_escalated(session: ActivitySession, tier: ApprovalTier) -> None:
    """Notify that a tier waited longer than the escalation delay, so the fallback approver
    may now decide.

    Called once per tier by the scheduler; exceptions are logged and ignored.

    :param session: the waiting session.
    :param tier: the tier that escalated.
    """


# -- scheduling -----------------------------------------------------------------------------


@hookspec
def pamcore_on_session_due(session: ActivitySession) -> None:
    """Notify that a session's scheduled start arrived and it is being provisioned.

    Called by the scheduler before the pre-session actions run. Exceptions are logged.

    :param session: the session, status ``provisioning``.
    """


@hookspec
def pamcore_on_session_available(session: ActivitySession) -> None:
    """Notify that a session became available to connect to.

    Called by the scheduler after the pre-session actions succeeded and the status was
    stored, in the same unit of work. Exceptions are logged and do not undo it.

    :param session: the session, status ``available``, with ``ends_at`` set.
    """


# -- password display -----------------------------------------------------------------------


@hookspec
def pamcore_password_display_policy(
    session: ActivitySession, viewer: User, purpose: str
) -> PasswordDisplayDecision | None:
    """Decide whether ``viewer`` may see the session's password, and for how long.

    Called on every reveal. Answers are collected and deny wins: the reveal happens only if
    at least one plugin allows it and none refuses; the window is the shortest one offered.
    The core's default plugin applies the connection profile (view/copy flags, always
    allowed for credential-based activities, 20 s default window) and the rule that only
    the requester may reveal.

    :param session: the session whose login password would be revealed.
    :param viewer: the user asking.
    :param purpose: ``view`` or ``copy``.
    :return: a :class:`pamcore.registry.PasswordDisplayDecision`, or ``None``.
    """


# -- extension points -----------------------------------------------------------------------


@hookspec
def pamcore_register_commands(register: Callable[[click.Command], None]) -> None:
    """Add click commands or groups to the ``pamcore`` CLI.

    Called once when the CLI is built. A command whose name is already taken is refused
    and recorded as a plugin failure.

    :param register: call it with a ``click.Command`` (or ``click.Group``).
    """


@hookspec
def pamcore_register_blueprints(register: Callable[..., None]) -> None:
    """Add Flask blueprints to the web dashboard.

    Called once by the app factory. ``register(blueprint, url_prefix=...)``.

    :param register: call it with a ``flask.Blueprint`` and optional ``url_prefix``.
    """


@hookspec(firstresult=True)
def pamcore_authenticate(
    core: Pamcore, db: Session, username: str, password: str, factors: dict[str, Any]
) -> AuthResult | None:
    """Authenticate a person by username and password (plus second factors).

    Called by the authentication service for the web, API and proxies. Stops at first
    non-None result: return ``None`` when the user is not yours (tri-state, as devpi does),
    an :class:`pamcore.registry.AuthResult` otherwise. The core's local-database plugin is
    registered last (``trylast``) so directory plugins (LDAP) answer first.

    :param core: the running core (configuration, clock, vault).
    :param db: the caller's unit of work (lockout counters are written in it).
    :param username: the name as typed.
    :param password: the password as typed; never log it.
    :param factors: extra factors, e.g. ``{"totp": "123456"}``.
    :return: an ``AuthResult`` or ``None``.
    """


@hookspec
def pamcore_audit_event(event: AuditEvent) -> None:
    """Forward an audit event (to a SIEM, syslog...) after it was appended to the chain.

    Called once per event, after the unit of work that recorded it committed (an event of
    a unit that rolled back is never announced).
    Exceptions are logged and never lose the event. Details never contain secrets.

    :param event: the stored event.
    """


__all__ = [name for name in dir() if name.startswith("pamcore_")]
