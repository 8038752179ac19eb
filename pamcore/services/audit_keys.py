"""The audit chain's HMAC keys: created once per instance, rotated, never removed.

Old events name the key that MACed them, so every key stays in the file for good; a
rotation only adds a key and makes it the one new events use. The rules for the events
written before an instance had a key are in ``docs/design/audit-chain.md``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from pamcore.audit import AuditKeyring
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError
from pamcore.instance_lock import instance_lock
from pamcore.model import AuditEvent, AuditHead
from pamcore.services.common import Actor, actor_name, require_admin
from pamcore.vault import MasterKey, write_keyring

LOCK = "audit-keys"
LOCK_DOING = "an audit key creation or rotation"


@dataclass(frozen=True)
class Created:
    """What ``pamcore init`` did about the audit keyring."""

    created: bool
    #: Events written before the key, which stay plain SHA-256 (0: none).
    legacy_until: int


def ensure_key(core: Pamcore) -> Created:
    """Create the audit keyring when the instance has none. Events already in the database
    (an instance from before audit keys) become the unkeyed legacy part, recorded in the
    file so that no later event may be unkeyed. Refused when events were MACed already:
    the file was lost, and a new key would leave them unverifiable (restore it instead)."""
    path = core.config.audit_key_path
    with instance_lock(core, LOCK, LOCK_DOING):
        if path.exists():
            return Created(False, core.audit_keys.keyring.legacy_until)
        with core.unit() as db:
            # Appenders wait on the head while the boundary is taken and the file written.
            db.scalar(select(AuditHead).where(AuditHead.id == 1).with_for_update())
            keyed = db.scalar(
                select(func.count()).select_from(AuditEvent).where(AuditEvent.key_id.is_not(None))
            )
            if keyed:
                raise ConfigurationError(
                    f"no audit keyring at {path}, but {keyed} audit events were MACed with "
                    f"one: restore {path} from your backup (a new key would leave them "
                    f"unverifiable)"
                )
            legacy_until = db.scalar(select(func.max(AuditEvent.id))) or 0
            write_keyring(path, AuditKeyring.created(MasterKey.generate(), legacy_until))
    return Created(True, legacy_until)


@dataclass(frozen=True)
class Rotation:
    old_key: str
    new_key: str


def rotate_key(core: Pamcore, actor: Actor) -> Rotation:
    """Add a key and make it MAC the events from now on (every process follows the file
    from its next append); the old key stays for the events it MACed."""
    require_admin(actor, "rotate the audit key")
    with instance_lock(core, LOCK, LOCK_DOING):
        keyring = core.audit_keys.keyring
        new = MasterKey.generate()
        write_keyring(core.audit_keys.path, keyring.with_active(new, core.now()))
        with core.unit() as db:
            core.audit(
                db,
                actor_name(actor),
                "audit.key_rotated",
                new_key=new.key_id,
                old_key=keyring.active_id,
            )
    return Rotation(keyring.active_id, new.key_id)
