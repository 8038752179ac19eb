"""Linux pre- and post-session actions, run over SSH as the resource's service credential.

Each action names a managed credential in its ``service_credential`` parameter; its password
or private key comes from the vault, and the target's host key is verified exactly as the
proxy does (pinned, or trust-on-first-use when the resource says so). A service account
other than ``root`` runs every command through ``sudo -n`` (it needs a NOPASSWD rule).

Secrets never appear on a command line (``ps`` shows those): passwords reach ``chpasswd``
and sudoers rules reach their file through the command's stdin. An account created here is
recorded with its UID and creation time in the session's ``linux.account_created`` audit event
(its GECOS field says ``pamcore session N`` for people only: its owner may change it with
``chfn``); a removal deletes only an account with that name and UID. One that cannot be
removed is locked, expired and its processes ended, with a ``linux.account_locked`` alert,
so a failed cleanup never leaves a usable account. Action runners are synchronous and run in
a scheduler thread outside any write transaction; each opens its own event loop with
``asyncio.run``.
"""

from __future__ import annotations

import asyncio
import logging
import re
import shlex
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, NoReturn

import asyncssh
from sqlalchemy.orm import Session

from pamcore import hookimpl
from pamcore.actionkit import (
    ACTOR,
    audit_details,
    find_credential,
    generate_password,
    reveal_credential,
    store_new_secret,
)
from pamcore.errors import ActionFailed, NotFound
from pamcore.model import Credential, Resource
from pamcore.proxy import LEGACY_ALGORITHMS, host_key_refusal, pin_host_key
from pamcore.registry import ActionContext, ActionType
from pamcore_ssh.hooks import ssh_algorithms, ssh_handshake_hint
from pamcore_ssh.target import (
    HostKeySeen,
    TargetError,
    TargetSpec,
    close_target,
    connect_target,
    legacy_in_use,
    negotiated,
)

log = logging.getLogger(__name__)

#: The audit event that records an account this module created, with its UID.
ACCOUNT_CREATED = "linux.account_created"
SERVICE_PARAM = "service_credential"
#: Seconds one remote command may take before the action fails.
COMMAND_TIMEOUT = 60.0
#: POSIX portable user and group names (what useradd accepts by default): checked before a
#: name goes into a command, a chpasswd line or a sudoers file.
_NAME = re.compile(r"[a-z_][a-z0-9_.-]{0,31}")
SUDOERS_DIR = "/etc/sudoers.d"
DEFAULT_SUDO_RULE = "ALL=(ALL:ALL) ALL"
#: useradd/userdel exit status: the user is logged in (processes still ending).
_USER_BUSY = 8

Work = Callable[["Remote"], Awaitable[None]]


class Remote:
    """An authenticated SSH connection to one resource, running commands as root."""

    def __init__(self, conn: asyncssh.SSHClientConnection, as_root: bool, where: str) -> None:
        #: The connection itself, for devices driven through an interactive shell (IOS).
        self.conn = conn
        self._sudo = not as_root
        self.where = where

    async def run(
        self, command: str, what: str, stdin: str | None = None, ok: tuple[int, ...] = (0,)
    ) -> asyncssh.SSHCompletedProcess:
        """Run ``command`` (a shell line, no secrets in it); a status outside ``ok`` raises
        :class:`ActionFailed` with the target's first error line."""
        if self._sudo:
            command = f"sudo -n sh -c {shlex.quote(command)}"
        try:
            result = await self.conn.run(command, input=stdin, check=False, timeout=COMMAND_TIMEOUT)
        except asyncssh.TimeoutError:
            raise ActionFailed(
                f"{what} on {self.where} took longer than {COMMAND_TIMEOUT:.0f} s"
            ) from None
        except (asyncssh.Error, OSError) as exc:
            raise ActionFailed(f"{what} on {self.where}: connection lost ({exc})") from None
        if result.exit_status not in ok:
            detail = _first_line(result.stderr) or f"exit status {result.exit_status}"
            raise ActionFailed(f"{what} failed on {self.where}: {detail}")
        return result


def _first_line(text: object) -> str:
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    return lines[0][:200] if lines else ""


def _checked_name(name: str, what: str) -> str:
    if not _NAME.fullmatch(name):
        raise ActionFailed(f"{what} '{name}' is not a valid Linux name")
    return name


def _marker(ctx: ActionContext) -> str:
    """The GECOS comment that makes an account ours: ``pamcore session 42``."""
    return f"pamcore session {ctx.session.id}"


# -- checking parameters when an action is added ------------------------------------------


def _existing_credential(db: Session, params: dict[str, Any], param: str) -> None:
    try:
        find_credential(db, str(params[param]))
    except NotFound as exc:
        raise ValueError(f"parameter '{param}': {exc}") from None


def check_service_params(db: Session, params: dict[str, Any]) -> None:
    """The service credential is named and exists, and so does ``credential`` when given
    (whether it belongs to each resource is known only when a session runs)."""
    if not params.get(SERVICE_PARAM):
        raise ValueError(
            f"parameter '{SERVICE_PARAM}' is missing: name the credential the action logs in "
            f"with (pamcore credentials list)"
        )
    _existing_credential(db, params, SERVICE_PARAM)
    if params.get("credential"):
        _existing_credential(db, params, "credential")


def _check_create_params(db: Session, params: dict[str, Any]) -> None:
    check_service_params(db, params)
    group = params.get("sudo_group")
    if group and not _NAME.fullmatch(str(group)):
        raise ValueError(f"parameter 'sudo_group': '{group}' is not a valid Linux group name")


def _check_sudoers_params(db: Session, params: dict[str, Any]) -> None:
    check_service_params(db, params)
    if _multiline(str(params.get("rule") or "")):
        raise ValueError("parameter 'rule' must be one line")


def _multiline(text: str) -> bool:
    return "\n" in text or "\r" in text


# -- connecting --------------------------------------------------------------------------


def _credential(ctx: ActionContext, param: str) -> Credential:
    """The credential named in ``param``; it must be this resource's or a domain one."""
    name = ctx.params.get(param)
    if not name:
        raise ActionFailed(f"parameter '{param}' is missing: name a credential")
    with ctx.core.reader() as db:
        try:
            credential = find_credential(db, str(name))
        except NotFound as exc:
            raise ActionFailed(str(exc)) from None
        owner = credential.resource
        if owner is not None and owner.id != ctx.resource.id:
            raise ActionFailed(
                f"credential '{credential.name}' belongs to {owner.name}, not {ctx.resource.name}"
            )
        db.expunge(credential)
        return credential


def _service_spec(ctx: ActionContext) -> TargetSpec:
    credential = _credential(ctx, SERVICE_PARAM)
    password, key = reveal_credential(ctx.core, credential.id)
    if password is None and key is None:
        raise ActionFailed(f"credential '{credential.name}' has no password or private key")
    resource: Resource = ctx.resource
    return TargetSpec(
        resource_id=resource.id,
        resource_name=resource.name,
        address=resource.address,
        port=resource.port_for("ssh") or 22,
        username=credential.username,
        password=password,
        private_key=key,
        pinned_key=resource.host_key,
        algorithms=ssh_algorithms(ctx.core.hooks, resource, ctx.core.config),
    )


async def _connected(ctx: ActionContext, spec: TargetSpec, work: Work) -> None:
    resource = ctx.resource
    seen = HostKeySeen()

    def judge(line: str, fingerprint: str) -> str | None:
        return host_key_refusal(resource, line, fingerprint)

    async def hint(reason: str) -> str | None:
        return ssh_handshake_hint(ctx.core.hooks, resource, reason, ctx.core.config)

    try:
        conn = await connect_target(spec, judge, seen, hint)
    except TargetError as exc:
        if seen.line and judge(seen.line, seen.fingerprint):
            ctx.audit("ssh.host_key_refused", offered=seen.fingerprint)
        raise ActionFailed(str(exc)) from None
    try:
        used = negotiated(conn, seen)
        legacy = legacy_in_use(spec, used)
        if legacy:
            ctx.audit(LEGACY_ALGORITHMS, legacy=",".join(legacy), **used)
        if not (resource.host_key or "").strip() and resource.trust_on_first_use:
            pin_host_key(ctx.core, resource.id, seen.line, ACTOR)
        await work(Remote(conn, spec.username == "root", resource.name))
    finally:
        await close_target(conn)


def _over_ssh(ctx: ActionContext, work: Work) -> None:
    """Connect as the service credential and run ``work`` in a loop of this thread."""
    asyncio.run(_connected(ctx, _service_spec(ctx), work))


# -- ephemeral accounts ------------------------------------------------------------------


async def _account_uid(remote: Remote, name: str) -> int | None:
    """The UID of ``name``, or ``None`` when there is no such account."""
    result = await remote.run(f"getent passwd {name}", "looking up the account", ok=(0, 2))
    if result.exit_status == 2:
        return None
    return int(str(result.stdout).split(":")[2])


def _created_uid(ctx: ActionContext, name: str) -> int | None:
    """The UID ``name`` had when this session's action created it on this resource (its
    ``linux.account_created`` event), or ``None`` when it created no such account."""
    for details in audit_details(ctx, ACCOUNT_CREATED):
        if details.get("account") == name and isinstance(details.get("uid"), int):
            return int(details["uid"])
    return None


def _create_account(ctx: ActionContext) -> None:
    name = _checked_name(ctx.login_account, "account")
    password = ctx.login_password
    if not password:
        raise ActionFailed("no ephemeral password: the activity's login must be ephemeral")
    group = ctx.params.get("sudo_group")
    groups = f" --groups {_checked_name(str(group), 'group')}" if group else ""
    marker = _marker(ctx)

    async def work(remote: Remote) -> None:
        uid = await _account_uid(remote, name)
        created = uid is None
        if not created and uid != _created_uid(ctx, name):
            raise ActionFailed(
                f"account {name} already exists on {remote.where} and is not this session's; "
                f"refusing to take it over"
            )
        if created:
            await remote.run(
                f"useradd --create-home --shell /bin/bash --comment {shlex.quote(marker)}"
                f"{groups} {name}",
                "creating the account",
            )
            uid = await _account_uid(remote, name)
            if uid is None:
                raise ActionFailed(f"account {name} on {remote.where} is gone after useradd")
            # Recorded before it gets a password, so a removal can always recognise it.
            ctx.audit(
                ACCOUNT_CREATED,
                sudo_group=str(group or ""),
                uid=uid,
                created_at=ctx.now.isoformat(),
            )
        try:
            await remote.run("chpasswd", "setting the password", stdin=f"{name}:{password}\n")
        except ActionFailed:
            if created:  # leave nothing half-created behind
                await remote.run(f"userdel --remove {name}", "removing the account", ok=(0, 6))
            raise
        if not created:
            ctx.audit("linux.account_reused", sudo_group=str(group or ""), uid=uid)

    _over_ssh(ctx, work)


async def _delete_account(remote: Remote, name: str) -> None:
    """End the account's processes and delete it with its home."""
    for _attempt in range(10):
        # pkill: 0 = signalled, 1 = no process left; userdel waits for none running.
        await remote.run(f"pkill --signal KILL -u {name}", "ending its processes", ok=(0, 1))
        result = await remote.run(
            f"userdel --remove {name}", "removing the account", ok=(0, 6, _USER_BUSY)
        )
        if result.exit_status != _USER_BUSY:
            return
        await asyncio.sleep(0.2)
    raise ActionFailed(f"account {name} on {remote.where} keeps running processes")


async def _lock_instead(
    ctx: ActionContext, remote: Remote, name: str, uids: Iterable[int], reason: str
) -> NoReturn:
    """Make an account that cannot be removed unusable (password locked, expired on
    1 January 1970, which also refuses key logins, and its processes ended), audit the
    alert, and fail the action so the session says so."""
    where = remote.where
    try:
        await remote.run(
            f"usermod --lock {name} && chage --expiredate 0 {name}", "locking the account"
        )
        for uid in sorted(set(uids)):
            await remote.run(f"pkill --signal KILL -u {uid}", "ending its processes", ok=(0, 1))
    except ActionFailed as exc:
        ctx.audit("linux.account_lock_failed", reason=reason, error=str(exc))
        log.error(
            "session %s: account %s on %s: %s; locking failed too: %s",
            *(ctx.session.id, name, where, reason, exc),
        )
        raise ActionFailed(
            f"account {name} on {where} could not be removed ({reason}) nor locked ({exc}); "
            f"an administrator must remove it"
        ) from None
    ctx.audit("linux.account_locked", reason=reason)
    log.error(
        "session %s: account %s on %s locked, not removed: %s", ctx.session.id, name, where, reason
    )
    raise ActionFailed(
        f"account {name} on {where} could not be removed ({reason}); it is locked and "
        f"expired and its processes were ended: an administrator must remove it"
    )


def _remove_account(ctx: ActionContext) -> None:
    name = _checked_name(ctx.login_account, "account")

    async def work(remote: Remote) -> None:
        uid = await _account_uid(remote, name)
        if uid is None:
            await _delete_sudoers_file(ctx, remote, name)
            ctx.audit("linux.account_absent")
            return
        created = _created_uid(ctx, name)
        if created is None:
            raise ActionFailed(
                f"account {name} on {remote.where} was not created for this session; "
                f"not removing it"
            )
        # First, so the rule is gone even when the account can only be locked: it grants
        # to a name that a later account may take.
        await _delete_sudoers_file(ctx, remote, name)
        if uid != created:
            reason = f"its UID is {uid}, not {created} as created"
            await _lock_instead(ctx, remote, name, (uid, created), reason)
        try:
            await _delete_account(remote, name)
        except ActionFailed as exc:
            await _lock_instead(ctx, remote, name, (uid,), str(exc))
        ctx.audit("linux.account_removed", uid=uid)

    _over_ssh(ctx, work)


# -- password rotation -------------------------------------------------------------------

#: (remote, account, secret) -> the target now takes ``secret`` for ``account``.
SetSecret = Callable[["Remote", str, str], Awaitable[None]]


def rotate_credential(
    ctx: ActionContext, set_secret: SetSecret, checked_name: Callable[[str], str], kind: str
) -> None:
    """Set a new random secret on the target with ``set_secret``, then store it; the vault
    keeps the old one until the target accepted the new one, and a failed store puts the
    old one back. ``kind`` prefixes the audit action (``linux``, ``cisco``)."""
    if ctx.params.get("credential"):
        credential = _credential(ctx, "credential")
    elif ctx.session.login_credential is not None:
        credential = ctx.session.login_credential
    else:
        raise ActionFailed("parameter 'credential' is missing and the session has no credential")
    if not credential.managed:
        raise ActionFailed(f"credential '{credential.name}' is not managed by pamcore")
    if credential.resource_id != ctx.resource.id:
        ctx.audit(f"{kind}.rotation_skipped", credential=credential.name, reason="other resource")
        return
    user = checked_name(credential.username)
    old, _key = reveal_credential(ctx.core, credential.id)
    new = generate_password()

    async def work(remote: Remote) -> None:
        await set_secret(remote, user, new)
        try:
            store_new_secret(ctx, credential.id, new)
        except Exception as exc:
            if old is not None:
                await set_secret(remote, user, old)
            raise ActionFailed(
                f"the new secret for {user} could not be stored ({type(exc).__name__}); "
                f"{remote.where} keeps the old one"
            ) from exc

    _over_ssh(ctx, work)


async def _chpasswd(remote: Remote, user: str, password: str) -> None:
    await remote.run("chpasswd", "setting the password", stdin=f"{user}:{password}\n")


def _rotate_password(ctx: ActionContext) -> None:
    rotate_credential(ctx, _chpasswd, lambda name: _checked_name(name, "account"), "linux")


# -- sudoers rules -----------------------------------------------------------------------


def _sudoers_file(name: str) -> str:
    """sudo skips files in sudoers.d whose names contain ``.`` or end in ``~``."""
    return f"{SUDOERS_DIR}/pamcore-{name.replace('.', '_')}"


def _add_sudoers(ctx: ActionContext) -> None:
    name = _checked_name(ctx.login_account, "account")
    rule = str(ctx.params.get("rule") or DEFAULT_SUDO_RULE)
    if _multiline(rule):
        raise ActionFailed("parameter 'rule' must be one line")
    content = f"# {_marker(ctx)}\n{name} {rule}\n"
    final = _sudoers_file(name)
    # Written to a dot-file (ignored by sudo) and checked with visudo before it is moved
    # into place, so a bad rule never breaks sudo on the target.
    script = (
        f'umask 0337; t=$(mktemp {SUDOERS_DIR}/.pamcore-XXXXXX) && cat > "$t" && '
        f'chmod 0440 "$t" && if visudo -cqf "$t" >&2; then mv -f "$t" {final}; '
        f"else rm -f \"$t\"; echo 'visudo rejected the rule' >&2; exit 3; fi"
    )

    async def work(remote: Remote) -> None:
        await remote.run(script, "adding the sudoers rule", stdin=content)
        ctx.audit("linux.sudoers_added", file=final, rule=rule)

    _over_ssh(ctx, work)


async def _delete_sudoers_file(ctx: ActionContext, remote: Remote, name: str) -> None:
    """Delete the account's ``pamcore-<name>`` rule file if there is one (audited)."""
    final = _sudoers_file(name)
    result = await remote.run(
        f"if [ -e {final} ]; then rm -f {final} && echo removed; fi", "removing the sudoers rule"
    )
    if str(result.stdout).strip() == "removed":
        ctx.audit("linux.sudoers_removed", file=final)


def _remove_sudoers(ctx: ActionContext) -> None:
    name = _checked_name(ctx.login_account, "account")

    async def work(remote: Remote) -> None:
        await _delete_sudoers_file(ctx, remote, name)

    _over_ssh(ctx, work)


_SERVICE_HELP = "name of the credential the action logs in with (root, or sudo NOPASSWD)"


@hookimpl
def pamcore_register_actions(register: Callable[[ActionType], None]) -> None:
    linux = ("linux",)
    register(
        ActionType(
            name="linux-create-account",
            description="Create the session's ephemeral account with its password",
            run=_create_account,
            params={SERVICE_PARAM: _SERVICE_HELP, "sudo_group": "a group to add it to"},
            platforms=linux,
            check=_check_create_params,
        )
    )
    register(
        ActionType(
            name="linux-remove-account",
            description="End the ephemeral account's processes and delete it with its home "
            "and its pamcore sudoers.d rule",
            run=_remove_account,
            params={SERVICE_PARAM: _SERVICE_HELP},
            platforms=linux,
            check=check_service_params,
        )
    )
    register(
        ActionType(
            name="linux-rotate-password",
            description="Set a new random password for a managed account and vault it",
            run=_rotate_password,
            params={
                SERVICE_PARAM: _SERVICE_HELP,
                "credential": "the managed credential to rotate (default: the session's)",
            },
            platforms=linux,
            check=check_service_params,
        )
    )
    register(
        ActionType(
            name="linux-add-sudoers",
            description="Add a sudoers.d rule for the session's account (checked by visudo)",
            run=_add_sudoers,
            params={SERVICE_PARAM: _SERVICE_HELP, "rule": f"default '{DEFAULT_SUDO_RULE}'"},
            platforms=linux,
            check=_check_sudoers_params,
        )
    )
    register(
        ActionType(
            name="linux-remove-sudoers",
            description="Remove the session account's sudoers.d rule",
            run=_remove_sudoers,
            params={SERVICE_PARAM: _SERVICE_HELP},
            platforms=linux,
            check=check_service_params,
        )
    )
