"""People: users, roles, passwords, groups, and sign-in — the one path for every edge.

Usernames are the left part of the DirectConnect grammar ``user+activity+resource@proxy``,
so they are lowercase and may never contain ``+`` or ``@``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pamcore import metrics
from pamcore.core import Pamcore
from pamcore.errors import AuthenticationFailed, PolicyDenied, ValidationError
from pamcore.lifecycle import OPEN, Status
from pamcore.model import (
    AccessPolicy,
    ActivitySession,
    Approval,
    ApprovalTier,
    Group,
    Role,
    User,
    UserKey,
)
from pamcore.passwords import hash_password
from pamcore.services.common import (
    Actor,
    SystemActor,
    by_name,
    check_text,
    normalize_name,
    require_admin,
)
from pamcore.services.sessions import cancel_session
from pamcore.services.signins import end_sign_ins

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MAX_NAME = 128
#: Characters that would break the DirectConnect grammar or a terminal line.
_RESERVED = {
    "+": "'+' separates user, activity and resource in DirectConnect logins",
    "@": "'@' separates the login from the proxy host in DirectConnect logins",
}


# -- names ----------------------------------------------------------------------------------


def check_username(username: str) -> str:
    """The normalised username, or a ValidationError that says how to fix it."""
    name = username.strip()
    for char, why in _RESERVED.items():
        if char in name:
            raise ValidationError("username", f"must not contain {why}")
    if name != name.lower():
        raise ValidationError("username", f"must be lowercase (try '{name.lower()}')")
    if not USERNAME.fullmatch(name):
        raise ValidationError(
            "username",
            "1-64 characters: lowercase letters, digits, '.', '_' or '-', "
            "starting with a letter or digit",
        )
    return name


def check_name(field: str, name: str, max_len: int = MAX_NAME) -> str:
    """Names of groups, resources, activities...: typed in DirectConnect logins and URLs."""
    name = name.strip()
    if not name:
        raise ValidationError(field, "must not be empty")
    if len(name) > max_len:
        raise ValidationError(field, f"at most {max_len} characters")
    for char, why in _RESERVED.items():
        if char in name:
            raise ValidationError(field, f"must not contain {why}")
    if any(not c.isprintable() for c in name):
        raise ValidationError(field, "must not contain control characters")
    return name


def unique_name(db: Session, model: type, name: str, current: Any = None) -> str:
    """A checked ``name`` no other row answers to, or a ValidationError. Look-ups match
    case-insensitively with ``-``/``_`` as spaces, so ``linux_admin`` would shadow
    ``Linux Admin``; ``current`` is the row being renamed."""
    name = check_name("name", name)
    wanted = normalize_name(name)
    for row in db.scalars(select(model)):
        if row is not current and normalize_name(row.name) == wanted:
            raise ValidationError("name", f"'{row.name}' already exists")
    return name


# -- users ----------------------------------------------------------------------------------


def list_users(db: Session) -> list[User]:
    return list(db.scalars(select(User).order_by(User.username)))


def get_user(db: Session, username: str) -> User:
    return by_name(db, User, username)


def create_user(
    core: Pamcore,
    db: Session,
    actor: Actor,
    username: str,
    *,
    role: Role = Role.USER,
    display_name: str = "",
    email: str = "",
    password: str | None = None,
) -> User:
    """Create a user; without a password they cannot sign in until one is set."""
    require_admin(actor, "create users")
    username = check_username(username)
    if db.scalar(select(User).where(func.lower(User.username) == username)) is not None:
        raise ValidationError("username", f"'{username}' already exists")
    user = User(
        username=username,
        display_name=check_text("display_name", display_name, 128) or username,
        email=_email(email),
        role=Role(role),
        password_hash=hash_password(password) if password is not None else None,
    )
    db.add(user)
    db.flush()
    core.audit(
        db,
        actor.username,
        "user.created",
        target=user.username,
        role=user.role.value,
        has_password=password is not None,
    )
    return user


def update_user(
    core: Pamcore,
    db: Session,
    actor: Actor,
    username: str,
    *,
    display_name: str | None = None,
    email: str | None = None,
) -> User:
    require_admin(actor, "change users")
    user = get_user(db, username)
    changes: dict[str, str] = {}
    if display_name is not None:
        user.display_name = changes["display_name"] = check_text("display_name", display_name, 128)
    if email is not None:
        user.email = changes["email"] = _email(email)
    core.audit(db, actor.username, "user.updated", target=user.username, **changes)
    return user


def set_role(core: Pamcore, db: Session, actor: Actor, username: str, role: Role | str) -> User:
    require_admin(actor, "change roles")
    user = get_user(db, username)
    try:
        new = Role(role)
    except ValueError:
        raise ValidationError("role", f"one of {', '.join(r.value for r in Role)}") from None
    if isinstance(actor, User) and actor.id == user.id and new != Role.ADMIN:
        raise PolicyDenied("you cannot remove your own administrator role; ask another admin")
    old, user.role = user.role, new
    core.audit(
        db, actor.username, "user.role_set", target=user.username, old=old.value, new=new.value
    )
    return user


def set_password(core: Pamcore, db: Session, actor: Actor, username: str, password: str) -> User:
    """An administrator sets anyone's password; a user may set their own. Unlocks too, and
    ends every dashboard sign-in made with the old password."""
    user = get_user(db, username)
    if not (isinstance(actor, User) and actor.id == user.id):
        require_admin(actor, "set other users' passwords")
    user.password_hash = hash_password(password)
    user.failed_logins = 0
    user.locked_until = None
    end_sign_ins(user)
    core.audit(db, actor.username, "user.password_set", target=user.username)
    return user


def unlock_user(core: Pamcore, db: Session, actor: Actor, username: str) -> User:
    require_admin(actor, "unlock users")
    user = get_user(db, username)
    user.failed_logins = 0
    user.locked_until = None
    core.audit(db, actor.username, "user.unlocked", target=user.username)
    return user


def set_active(core: Pamcore, db: Session, actor: Actor, username: str, active: bool) -> User:
    """Disable (or re-enable) a user: kept for the audit trail, but unable to sign in, and
    signed out of every browser (re-enabling does not bring those sign-ins back)."""
    require_admin(actor, "disable or enable users")
    user = get_user(db, username)
    if isinstance(actor, User) and actor.id == user.id and not active:
        raise PolicyDenied("you cannot disable your own account")
    user.is_active = active
    if not active:
        end_sign_ins(user)
    core.audit(
        db, actor.username, "user.enabled" if active else "user.disabled", target=user.username
    )
    return user


def delete_user(core: Pamcore, db: Session, actor: Actor, username: str) -> None:
    """Delete a user who never took part in a session; others are disabled instead, so the
    history keeps saying who did what."""
    require_admin(actor, "delete users")
    user = get_user(db, username)
    if isinstance(actor, User) and actor.id == user.id:
        raise PolicyDenied("you cannot delete your own account")
    used = db.scalar(
        select(func.count())
        .select_from(ActivitySession)
        .where(ActivitySession.requester_id == user.id)
    ) or db.scalar(
        select(func.count()).select_from(Approval).where(Approval.approver_id == user.id)
    )
    if used:
        raise ValidationError(
            "username",
            f"{user.username} has sessions or approvals in the history; "
            f"disable the account instead ('pamcore users disable {user.username}')",
        )
    db.delete(user)
    core.audit(db, actor.username, "user.deleted", target=user.username)


# -- groups ---------------------------------------------------------------------------------


def list_groups(db: Session) -> list[Group]:
    return list(db.scalars(select(Group).order_by(Group.name)))


def get_group(db: Session, name: str) -> Group:
    return by_name(db, Group, name)


def create_group(
    core: Pamcore,
    db: Session,
    actor: Actor,
    name: str,
    description: str = "",
    members: Iterable[str] = (),
) -> Group:
    require_admin(actor, "create groups")
    group = Group(
        name=unique_name(db, Group, name),
        description=check_text("description", description, 512),
        members=[get_user(db, m) for m in members],
    )
    db.add(group)
    db.flush()
    core.audit(
        db,
        actor.username,
        "group.created",
        target=group.name,
        members=[u.username for u in group.members],
    )
    return group


def update_group(
    core: Pamcore,
    db: Session,
    actor: Actor,
    name: str,
    *,
    new_name: str | None = None,
    description: str | None = None,
    members: Iterable[str] | None = None,
) -> Group:
    """Change a group; ``members`` (when given) replaces the member list, and the audit
    event names who joined and who left."""
    require_admin(actor, "change groups")
    group = get_group(db, name)
    before = group.name
    if new_name is not None:
        group.name = unique_name(db, Group, new_name, current=group)
    if description is not None:
        group.description = check_text("description", description, 512)
    changes: dict[str, list[str]] = {}
    if members is not None:
        wanted = list(dict.fromkeys(get_user(db, m) for m in members))
        changes["joined"] = [u.username for u in wanted if u not in group.members]
        changes["left"] = [u.username for u in group.members if u not in wanted]
        group.members = wanted
    core.audit(db, actor.username, "group.updated", target=before, name=group.name, **changes)
    return group


def delete_group(core: Pamcore, db: Session, actor: Actor, name: str) -> None:
    """Delete a group; refused while an access policy or approval tier names it, because
    removing it silently would change who may do or approve what."""
    require_admin(actor, "delete groups")
    group = get_group(db, name)
    policies = db.scalars(select(AccessPolicy).where(AccessPolicy.groups.contains(group))).all()
    if policies:
        raise ValidationError(
            "group",
            f"'{group.name}' is used by access policy "
            f"{', '.join(repr(p.name) for p in policies)}; remove it there first",
        )
    tiers = db.scalars(select(ApprovalTier).where(ApprovalTier.groups.contains(group))).all()
    if tiers:
        raise ValidationError(
            "group",
            f"'{group.name}' approves in connection profile "
            f"{', '.join(sorted({repr(t.profile.name) for t in tiers}))}; remove it there first",
        )
    db.delete(group)
    core.audit(db, actor.username, "group.deleted", target=group.name)


def add_member(core: Pamcore, db: Session, actor: Actor, group_name: str, username: str) -> Group:
    require_admin(actor, "change group members")
    group, user = get_group(db, group_name), get_user(db, username)
    if user in group.members:
        raise ValidationError("member", f"{user.username} is already in '{group.name}'")
    group.members.append(user)
    core.audit(db, actor.username, "group.member_added", target=group.name, member=user.username)
    return group


def remove_member(
    core: Pamcore, db: Session, actor: Actor, group_name: str, username: str
) -> Group:
    require_admin(actor, "change group members")
    group, user = get_group(db, group_name), get_user(db, username)
    if user not in group.members:
        raise ValidationError("member", f"{user.username} is not in '{group.name}'")
    group.members.remove(user)
    core.audit(db, actor.username, "group.member_removed", target=group.name, member=user.username)
    return group


# -- sign-in --------------------------------------------------------------------------------


def authenticate(
    core: Pamcore,
    db: Session,
    username: str,
    password: str,
    factors: dict[str, Any] | None = None,
) -> User:
    """Check a sign-in through the ``pamcore_authenticate`` plugins and return the user.

    A failure commits the caller's unit *before* raising :class:`AuthenticationFailed`:
    the failure counter and lockout the plugin wrote, and the ``auth.failed`` event, must
    survive the rollback the exception triggers, or five wrong passwords would never lock
    the account. Call it first in its unit, so nothing else is committed with them.
    """
    claimed = username.strip()[:64]
    result = core.hooks.authenticate(core, db, claimed, password, dict(factors or {}))
    if result is None or not result.ok or result.user is None:
        reason = (
            result.reason
            if result is not None and result.reason
            else ("wrong username or password")
        )
        core.audit(db, claimed or "-", "auth.failed", target=claimed, reason=reason)
        db.commit()
        metrics.SIGN_IN_FAILURES.labels(method="password").inc()
        raise AuthenticationFailed(reason)
    core.audit(db, result.user.username, "auth.succeeded", target=result.user.username)
    return result.user


def authenticate_key(core: Pamcore, db: Session, username: str, fingerprint: str) -> User:
    """Sign-in with an SSH public key the user registered (the proxy has checked the
    signature): the key must be the user's, and the account active and not locked.
    Audited like :func:`authenticate`, and a failure commits its audit event first."""
    claimed = username.strip()[:64]
    user = db.scalar(select(User).where(func.lower(User.username) == claimed.lower()))
    key = db.scalar(select(UserKey).where(UserKey.fingerprint == fingerprint))
    reason = ""
    if user is None or key is None or key.user_id != user.id:
        reason = "this key is not registered for that user"
    elif not user.is_active:
        reason = "this account is disabled"
    elif user.locked_until is not None and user.locked_until > core.now():
        reason = "too many failed sign-ins; try again later"
    if reason or user is None:
        core.audit(db, claimed or "-", "auth.failed", target=claimed, reason=reason, method="key")
        db.commit()
        metrics.SIGN_IN_FAILURES.labels(method="key").inc()
        raise AuthenticationFailed(reason)
    core.audit(db, user.username, "auth.succeeded", target=user.username, method="key")
    return user


# -- users a directory vouches for ---------------------------------------------------------


@dataclass(frozen=True)
class DirectoryAccount:
    """What a directory plugin read about a person, already in pamcore's terms: ``groups``
    are pamcore group names its mapping gave (the plugin translates, the core decides)."""

    username: str
    display_name: str = ""
    email: str = ""
    role: Role = Role.USER
    groups: tuple[str, ...] = ()


def user_source(db: Session, username: str) -> str | None:
    """``local``, a directory plugin's name, or ``None`` when no user has that name: a
    directory plugin leaves local users (the break-glass admin) to the local password."""
    claimed = username.strip().lower()
    return db.scalar(select(User.source).where(func.lower(User.username) == claimed))


def directory_usernames(db: Session, source: str) -> list[str]:
    """The users ``source`` created, for a sync that checks each of them again."""
    return list(
        db.scalars(select(User.username).where(User.source == source).order_by(User.username))
    )


def provision_directory_user(
    core: Pamcore,
    db: Session,
    source: str,
    account: DirectoryAccount,
    managed_groups: Iterable[str],
) -> User:
    """Create the user at their first directory sign-in, or refresh them at the next: role,
    names and their membership of ``managed_groups`` (the groups the directory mapping names,
    created when missing) follow the directory; other groups stay pamcore's own. It never
    re-enables a disabled user (an administrator does), and never takes over a local user."""
    username = check_username(account.username)
    user = db.scalar(select(User).where(func.lower(User.username) == username))
    managed = {normalize_name(n): n for n in managed_groups}
    wanted = [
        _directory_group(core, db, source, managed[k]) for k in _keys(account.groups, managed)
    ]
    if user is None:
        user = User(
            username=username,
            display_name=check_text("display_name", account.display_name, 128) or username,
            email=_email(account.email),
            role=Role(account.role),
            source=source,
            groups=wanted,
        )
        db.add(user)
        db.flush()
        core.audit(
            db,
            f"system:{source}",
            "user.provisioned",
            target=username,
            role=user.role.value,
            groups=[g.name for g in wanted],
        )
        return user
    if user.source != source:
        raise PolicyDenied(f"'{username}' is a {user.source} account, not one from {source}")
    changes: dict[str, Any] = {}
    if user.role != account.role:
        changes["role"] = [user.role.value, Role(account.role).value]
        user.role = Role(account.role)
    kept = [g for g in user.groups if normalize_name(g.name) not in managed]
    joined = [g.name for g in wanted if g not in user.groups]
    left = [g.name for g in user.groups if g not in kept and g not in wanted]
    if joined or left:
        changes.update(joined=joined, left=left)
        user.groups = kept + wanted
    if account.display_name and user.display_name != account.display_name:
        user.display_name = check_text("display_name", account.display_name, 128)
    if account.email and user.email != account.email:
        user.email = _email(account.email)
    if changes:
        core.audit(db, f"system:{source}", "user.refreshed", target=username, **changes)
    return user


def retire_directory_user(
    core: Pamcore, db: Session, source: str, username: str, why: str
) -> User | None:
    """The directory says this person is disabled or gone: disable the user ``source``
    created, end their dashboard sign-ins and cancel their open sessions (a session being
    provisioned or ending finishes on its own). ``None`` when ``source`` has no such user."""
    user = db.scalar(
        select(User).where(
            func.lower(User.username) == username.strip().lower(), User.source == source
        )
    )
    if user is None:
        return None
    actor = SystemActor(source)
    if user.is_active:
        user.is_active = False
        end_sign_ins(user)
        core.audit(db, actor.username, "user.disabled", target=user.username, reason=why)
    open_sessions = db.scalars(
        select(ActivitySession).where(
            ActivitySession.requester_id == user.id,
            ActivitySession.status.in_(
                [s.value for s in OPEN - {Status.ENDING, Status.PROVISIONING}]
            ),
        )
    )
    for session in open_sessions:
        cancel_session(core, db, actor, session.id, why)
    return user


def _keys(names: Iterable[str], managed: dict[str, str]) -> list[str]:
    return list(dict.fromkeys(k for k in map(normalize_name, names) if k in managed))


def _directory_group(core: Pamcore, db: Session, source: str, name: str) -> Group:
    """The pamcore group a directory mapping names, created on first use so the mapping
    works before an administrator has made it."""
    wanted = normalize_name(name)
    for group in db.scalars(select(Group)):
        if normalize_name(group.name) == wanted:
            return group
    group = Group(name=check_name("group", name), description=f"members come from {source}")
    db.add(group)
    db.flush()
    core.audit(db, f"system:{source}", "group.created", target=group.name, members=[])
    return group


# -- small input checks ---------------------------------------------------------------------


def _email(email: str) -> str:
    email = check_text("email", email, 254)
    if email and not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", email):
        raise ValidationError("email", f"'{email}' is not an e-mail address (name@example.org)")
    return email


__all__ = [
    "DirectoryAccount",
    "add_member",
    "authenticate",
    "authenticate_key",
    "check_name",
    "check_text",
    "check_username",
    "create_group",
    "create_user",
    "delete_group",
    "delete_user",
    "directory_usernames",
    "get_group",
    "get_user",
    "list_groups",
    "list_users",
    "provision_directory_user",
    "remove_member",
    "retire_directory_user",
    "set_active",
    "set_password",
    "set_role",
    "unique_name",
    "unlock_user",
    "update_group",
    "update_user",
    "user_source",
]
