"""What is protected: resources (with protocols, host keys, plugin settings) and vaulted
credentials. Secrets go straight to the vault; nothing here returns or logs them."""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from pamcore.core import Pamcore
from pamcore.errors import ValidationError
from pamcore.model import (
    Activity,
    ActivitySession,
    Credential,
    Platform,
    Resource,
    ResourceProtocol,
)
from pamcore.model.sessions import session_resources
from pamcore.presenters import credential_record, resource_record
from pamcore.registry import ResourceSetting
from pamcore.services.common import Actor, by_name, check_text, require_admin
from pamcore.services.directory import unique_name
from pamcore.services.paging import Page, fetch_page, page_request

#: IANA service-name registry ports of the protocols resources usually speak.
WELL_KNOWN_PORTS = {"ssh": 22, "telnet": 23, "rdp": 3389, "vnc": 5900}
_PROTOCOL = re.compile(r"^[a-z][a-z0-9-]{0,31}$")
_ADDRESS = re.compile(r"^[A-Za-z0-9._:\[\]%-]{1,255}$")
_HOST_KEY = re.compile(r"^((?i:sha256):\S+|(ssh|ecdsa)-\S+ [A-Za-z0-9+/=]+( .*)?)$")
_KEY_MARKER = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


# -- resources ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResourceChanges:
    """Fields to set on a resource; ``None`` leaves a field as it is (``host_key=""`` unpins)."""

    name: str | None = None
    address: str | None = None
    platform: Platform | str | None = None
    description: str | None = None
    protocols: tuple[str, ...] | None = None
    host_key: str | None = None
    trust_on_first_use: bool | None = None


def parse_protocols(specs: Iterable[str]) -> dict[str, int]:
    """``["ssh:22", "rdp"]`` -> ``{"ssh": 22, "rdp": 3389}``; a bare name takes its IANA
    well-known port (a plugin's ``default_port`` is where its *proxy* listens, not the
    target's port)."""
    found: dict[str, int] = {}
    for spec in specs:
        name, sep, port_text = spec.strip().lower().partition(":")
        if not _PROTOCOL.fullmatch(name):
            raise ValidationError("protocols", f"'{spec}' is not NAME:PORT (e.g. ssh:22)")
        if not sep:
            if name not in WELL_KNOWN_PORTS:
                raise ValidationError("protocols", f"give the port of '{name}' ({name}:PORT)")
            port = WELL_KNOWN_PORTS[name]
        elif port_text.isdigit() and 1 <= int(port_text) <= 65535:
            port = int(port_text)
        else:
            raise ValidationError("protocols", f"'{spec}': the port must be 1-65535")
        if name in found:
            raise ValidationError("protocols", f"'{name}' is given twice")
        found[name] = port
    return found


def list_resources(db: Session) -> list[Resource]:
    return list(db.scalars(select(Resource).order_by(Resource.name)))


def page_resources(db: Session, limit: str | None, cursor: str | None) -> Page[Resource]:
    """One page of the resources with their protocols, newest first, for a client's
    ``limit`` and ``cursor``."""
    query = select(Resource).options(selectinload(Resource.protocols))
    return fetch_page(db, query, Resource.id, page_request("resources", limit, cursor))


def get_resource(db: Session, name: str) -> Resource:
    return by_name(db, Resource, name)


def create_resource(
    core: Pamcore,
    db: Session,
    actor: Actor,
    name: str,
    address: str,
    *,
    platform: Platform | str = Platform.LINUX,
    protocols: Iterable[str] = ("ssh",),
    description: str = "",
    host_key: str | None = None,
    trust_on_first_use: bool = False,
) -> Resource:
    require_admin(actor, "create resources")
    resource = Resource(name="", address="", settings={})
    _apply_resource(
        db,
        resource,
        ResourceChanges(
            name=name,
            address=address,
            platform=platform,
            description=description,
            protocols=tuple(protocols),
            host_key=host_key or "",
            trust_on_first_use=trust_on_first_use,
        ),
    )
    db.add(resource)
    db.flush()
    core.audit(db, actor.username, "resource.created", target=resource.name, **_summary(resource))
    return resource


def update_resource(
    core: Pamcore, db: Session, actor: Actor, name: str, changes: ResourceChanges
) -> Resource:
    require_admin(actor, "change resources")
    resource = get_resource(db, name)
    before = resource.name
    _apply_resource(db, resource, changes)
    db.flush()
    core.audit(db, actor.username, "resource.updated", target=before, **_summary(resource))
    return resource


def _apply_resource(db: Session, resource: Resource, ch: ResourceChanges) -> None:
    if ch.name is not None:
        resource.name = unique_name(db, Resource, ch.name, current=resource)
    if ch.address is not None:
        address = ch.address.strip()
        if not _ADDRESS.fullmatch(address):
            raise ValidationError("address", f"'{address}' is not a host name or IP address")
        resource.address = address
    if ch.platform is not None:
        try:
            resource.platform = Platform(ch.platform)
        except ValueError:
            raise ValidationError(
                "platform", f"one of {', '.join(p.value for p in Platform)}"
            ) from None
    if ch.description is not None:
        resource.description = check_text("description", ch.description, 512)
    if ch.protocols is not None:
        ports = parse_protocols(ch.protocols)
        if not ports:
            raise ValidationError("protocols", "give at least one, e.g. ssh:22")
        # Keep existing rows, so (resource, name) stays unique within one flush.
        kept = {p.name: p for p in resource.protocols}
        rows = []
        for proto, port in ports.items():
            row = kept.get(proto) or ResourceProtocol(name=proto, port=port)
            row.port = port
            rows.append(row)
        resource.protocols = rows
    if ch.host_key is not None:
        key = ch.host_key.strip()
        if key and not _HOST_KEY.fullmatch(key):
            raise ValidationError(
                "host_key",
                "give an OpenSSH public-key line ('ssh-ed25519 AAAA...') or 'sha256:...'",
            )
        resource.host_key = key or None
    if ch.trust_on_first_use is not None:
        resource.trust_on_first_use = ch.trust_on_first_use


def delete_resource(core: Pamcore, db: Session, actor: Actor, name: str) -> None:
    """Delete a resource no session ever covered; the history must keep its target."""
    require_admin(actor, "delete resources")
    resource = get_resource(db, name)
    used = db.scalar(
        select(func.count())
        .select_from(session_resources)
        .where(session_resources.c.resource_id == resource.id)
    )
    if used:
        raise ValidationError(
            "resource",
            f"'{resource.name}' appears in {used} session(s); it stays for the history. "
            f"Remove it from its access policies instead",
        )
    db.delete(resource)
    core.audit(db, actor.username, "resource.deleted", target=resource.name)


def available_settings(core: Pamcore) -> list[ResourceSetting]:
    """Every per-resource setting the installed plugins understand."""
    return sorted(core.hooks.resource_settings().values(), key=lambda s: (s.plugin, s.key))


def _setting(core: Pamcore, plugin: str, key: str) -> ResourceSetting:
    known = core.hooks.resource_settings()
    setting = known.get((plugin.strip(), key.strip()))
    if setting is None:
        names = ", ".join(f"{p}.{k}" for p, k in sorted(known)) or "none (no plugin has any)"
        raise ValidationError("setting", f"'{plugin}.{key}' is not a known setting; known: {names}")
    return setting


def set_setting(
    core: Pamcore, db: Session, actor: Actor, name: str, plugin: str, key: str, value: str
) -> Resource:
    """Store a plugin setting, parsed and validated by the plugin that owns it."""
    require_admin(actor, "change resource settings")
    resource = get_resource(db, name)
    setting = _setting(core, plugin, key)
    try:
        parsed = setting.parse(value)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{setting.plugin}.{setting.key}", str(exc)) from None
    settings = {p: dict(v) for p, v in (resource.settings or {}).items()}
    settings.setdefault(setting.plugin, {})[setting.key] = parsed
    resource.settings = settings  # a new object, so the JSON column is seen as changed
    core.audit(
        db,
        actor.username,
        "resource.setting_set",
        target=resource.name,
        setting=f"{setting.plugin}.{setting.key}",
        value=parsed,
    )
    return resource


def unset_setting(
    core: Pamcore, db: Session, actor: Actor, name: str, plugin: str, key: str
) -> Resource:
    require_admin(actor, "change resource settings")
    resource = get_resource(db, name)
    settings = {p: dict(v) for p, v in (resource.settings or {}).items()}
    if key not in settings.get(plugin, {}):
        _setting(core, plugin, key)  # an unknown name says which ones exist
        raise ValidationError("setting", f"'{plugin}.{key}' is not set on '{resource.name}'")
    del settings[plugin][key]
    resource.settings = {p: v for p, v in settings.items() if v}
    core.audit(
        db,
        actor.username,
        "resource.setting_unset",
        target=resource.name,
        setting=f"{plugin}.{key}",
    )
    return resource


def _summary(resource: Resource) -> dict[str, Any]:
    record = resource_record(resource)
    return {k: record[k] for k in ("address", "platform", "protocols")}


# -- credentials ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CredentialChanges:
    """Non-secret fields to set; ``None`` leaves a field, ``resource=""`` detaches."""

    name: str | None = None
    username: str | None = None
    resource: str | None = None
    managed: bool | None = None
    description: str | None = None


def list_credentials(db: Session) -> list[Credential]:
    return list(db.scalars(select(Credential).order_by(Credential.name)))


def get_credential(db: Session, name: str) -> Credential:
    return by_name(db, Credential, name)


def create_credential(
    core: Pamcore,
    db: Session,
    actor: Actor,
    name: str,
    username: str,
    *,
    resource: str | None = None,
    password: str | None = None,
    private_key: str | None = None,
    managed: bool = False,
    description: str = "",
) -> Credential:
    """Store an account with its password and/or private key, encrypted in the vault."""
    require_admin(actor, "create credentials")
    if not password and not private_key:
        raise ValidationError("password", "give a password, a private key, or both")
    credential = Credential(name="", username="")
    _apply_credential(
        db,
        credential,
        CredentialChanges(
            name=name,
            username=username,
            resource=resource or "",
            managed=managed,
            description=description,
        ),
    )
    if password:
        credential.password_secret = core.vault.store(db, password)
    if private_key:
        credential.private_key_secret = core.vault.store(db, _check_key(private_key))
    db.add(credential)
    db.flush()
    core.audit(
        db,
        actor.username,
        "credential.created",
        target=credential.name,
        **_cred_summary(credential),
    )
    return credential


def update_credential(
    core: Pamcore, db: Session, actor: Actor, name: str, changes: CredentialChanges
) -> Credential:
    require_admin(actor, "change credentials")
    credential = get_credential(db, name)
    before = credential.name
    _apply_credential(db, credential, changes)
    db.flush()
    core.audit(db, actor.username, "credential.updated", target=before, **_cred_summary(credential))
    return credential


def _apply_credential(db: Session, credential: Credential, ch: CredentialChanges) -> None:
    if ch.name is not None:
        credential.name = unique_name(db, Credential, ch.name, current=credential)
    if ch.username is not None:
        account = ch.username.strip()
        if not account or len(account) > 128 or any(c.isspace() for c in account):
            raise ValidationError("username", "the account name: 1-128 characters, no spaces")
        credential.username = account
    if ch.resource is not None:
        credential.resource = get_resource(db, ch.resource) if ch.resource.strip() else None
    if ch.managed is not None:
        credential.managed = ch.managed
    if ch.description is not None:
        credential.description = check_text("description", ch.description, 512)


def set_credential_password(
    core: Pamcore, db: Session, actor: Actor, name: str, password: str
) -> Credential:
    """Replace the stored password (e.g. after a manual change on the device)."""
    require_admin(actor, "set credential passwords")
    credential = get_credential(db, name)
    if not password:
        raise ValidationError("password", "must not be empty")
    if credential.password_secret is None:
        credential.password_secret = core.vault.store(db, password)
    else:
        core.vault.replace(credential.password_secret, password, core.now())
    credential.rotated_at = core.now()
    core.audit(db, actor.username, "credential.password_set", target=credential.name)
    return credential


def set_credential_key(
    core: Pamcore, db: Session, actor: Actor, name: str, private_key: str
) -> Credential:
    require_admin(actor, "set credential keys")
    credential = get_credential(db, name)
    key = _check_key(private_key)
    if credential.private_key_secret is None:
        credential.private_key_secret = core.vault.store(db, key)
    else:
        core.vault.replace(credential.private_key_secret, key, core.now())
    core.audit(db, actor.username, "credential.key_set", target=credential.name)
    return credential


def delete_credential(core: Pamcore, db: Session, actor: Actor, name: str) -> None:
    """Delete a credential and its vaulted secrets; refused while an activity logs in with it."""
    require_admin(actor, "delete credentials")
    credential = get_credential(db, name)
    users = db.scalars(select(Activity).where(Activity.credential_id == credential.id)).all()
    if users:
        raise ValidationError(
            "credential",
            f"'{credential.name}' is used by activity "
            f"{', '.join(repr(a.name) for a in users)}; change or delete the activity first",
        )
    sessions = db.scalars(
        select(ActivitySession).where(ActivitySession.login_credential_id == credential.id)
    ).all()
    for session in sessions:
        session.login_credential = None
    for secret in (credential.password_secret, credential.private_key_secret):
        if secret is not None:
            db.delete(secret)
    db.delete(credential)
    core.audit(db, actor.username, "credential.deleted", target=credential.name)


def _cred_summary(credential: Credential) -> dict[str, Any]:
    record = credential_record(credential)
    return {k: record[k] for k in ("username", "resource", "managed")}


def _check_key(private_key: str) -> str:
    """A PEM or OpenSSH private key; the message never echoes what was given."""
    key = private_key.strip()
    if not _KEY_MARKER.search(key):
        raise ValidationError(
            "private_key",
            "not a private key: expected a PEM or OpenSSH block "
            "('-----BEGIN ... PRIVATE KEY-----')",
        )
    return key + "\n"


# -- target host keys (proxies) -------------------------------------------------------------


def host_key_refusal(resource: Resource, offered_line: str, offered_fingerprint: str) -> str | None:
    """Why a proxy must not trust the key ``resource`` offered, or ``None`` to trust it.

    The pin is an OpenSSH public-key line (type and base64 compared) or a ``SHA256:``
    fingerprint. No pin: trusted only when the resource opts into trust-on-first-use.
    """
    pinned = (resource.host_key or "").strip()
    if not pinned:
        if resource.trust_on_first_use:
            return None
        return (
            f"{resource.name} has no pinned host key and does not trust on first use; "
            f"ask an administrator to pin it"
        )
    if pinned.lower().startswith("sha256:"):
        matches = pinned[7:].rstrip("=") == offered_fingerprint.split(":", 1)[-1].rstrip("=")
    else:
        matches = pinned.split()[:2] == offered_line.split()[:2]
    if matches:
        return None
    return (
        f"the host key of {resource.name} changed (it offered {offered_fingerprint}); "
        f"connection refused; an administrator must check the new key on the target "
        f"(ssh-keygen -lf /etc/ssh/ssh_host_ed25519_key.pub) and re-pin it: "
        f"pamcore resources update {shlex.quote(resource.name)} --host-key {offered_fingerprint}"
    )


def pin_host_key(core: Pamcore, db: Session, resource_id: int, key_line: str, by: str) -> None:
    """Trust on first use: store the first key a proxy saw, once (a pin is never replaced
    here; re-pinning is an administrator's ``update_resource``)."""
    resource = db.get(Resource, resource_id, with_for_update=True)
    if resource is None or (resource.host_key or "").strip() or not resource.trust_on_first_use:
        return
    resource.host_key = " ".join(key_line.split()[:2])
    core.audit(db, by, "resource.host_key_pinned", target=resource.name, key=resource.host_key)
