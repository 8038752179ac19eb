"""The vault's master keys: what each key protects, rotation and retirement.

A rotation never puts a secret out of reach, whichever process writes meanwhile and
wherever it is killed (``docs/design/vault-keyring.md``):

1. the new key is added to the keyring file and made active, durably, before anything is
   encrypted with it; every process re-reads the file before its next vault operation;
2. secrets still under older keys are re-encrypted in small committed batches, each row
   locked while it moves; both keys stay in the keyring, so every row decrypts at every
   moment, and running the rotation again finishes an interrupted one;
3. an old key leaves the keyring only by ``retire_key``: when no secret uses it and a grace
   period has passed since it stopped being active (a process that read the keyring just
   before the rotation may still be writing with it).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select

from pamcore.clock import format_utc
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError, NotFound, PolicyDenied
from pamcore.instance_lock import instance_lock
from pamcore.model import AuditEvent, Secret
from pamcore.services.common import Actor, actor_name, require_admin
from pamcore.vault import MASTER_KEY_ENV, MasterKey, UndecryptableSecret, Vault, write_keyring

#: Secrets re-encrypted per committed transaction: short write locks for the running server.
ROTATION_BATCH = 200
#: How long a superseded key stays before it may be retired.
RETIRE_GRACE = dt.timedelta(minutes=5)
LOCK = "vault-keys"
LOCK_DOING = "a master-key rotation or retirement"


@dataclass(frozen=True)
class KeyUse:
    """One key id: how many secrets it protects, and where it stands."""

    key_id: str
    secrets: int
    active: bool
    #: False for a key that secrets name but the keyring lacks: those secrets are lost
    #: until the key is restored into the keyring file.
    in_keyring: bool
    superseded_at: dt.datetime | None


def key_uses(core: Pamcore, actor: Actor) -> list[KeyUse]:
    """Every key in the keyring and every key a secret names, active first."""
    require_admin(actor, "see the vault's keys")
    keyring = core.vault.keyring
    with core.reader() as db:
        rows = db.execute(select(Secret.key_id, func.count()).group_by(Secret.key_id))
        counts = {key_id: count for key_id, count in rows}
    ids = sorted(set(keyring.keys) | set(counts), key=lambda k: (k != keyring.active_id, k))
    return [
        KeyUse(
            key_id=key_id,
            secrets=counts.get(key_id, 0),
            active=key_id == keyring.active_id,
            in_keyring=key_id in keyring.keys,
            superseded_at=keyring.superseded.get(key_id),
        )
        for key_id in ids
    ]


@dataclass(frozen=True)
class Undecryptable:
    secret_id: int
    name: str | None
    key_id: str
    reason: str


def undecryptable_secrets(core: Pamcore, actor: Actor) -> list[Undecryptable]:
    """Secrets the keyring cannot open now: those naming a key it lacks, and those once
    audited as ``vault.undecryptable`` that still fail (wrong key, tampered data)."""
    require_admin(actor, "see the vault's keys")
    vault = core.vault
    keyring = vault.keyring
    found: dict[int, Undecryptable] = {}
    with core.reader() as db:
        missing = select(Secret).where(Secret.key_id.not_in(list(keyring.keys)))
        for secret in db.scalars(missing.order_by(Secret.id)):
            found[secret.id] = Undecryptable(
                secret.id, secret.name, secret.key_id, f"key '{secret.key_id}' is not loaded"
            )
        targets = db.scalars(
            select(AuditEvent.target).where(AuditEvent.action == "vault.undecryptable").distinct()
        )
        ids = {int(t.split()[-1]) for t in targets if t.startswith("secret ")} - set(found)
        for secret in db.scalars(select(Secret).where(Secret.id.in_(ids)).order_by(Secret.id)):
            try:
                vault.reveal(secret)
            except UndecryptableSecret as exc:
                exc.audit_entry = None  # listing is not a new incident
                found[secret.id] = Undecryptable(secret.id, secret.name, secret.key_id, str(exc))
    return [found[k] for k in sorted(found)]


@dataclass(frozen=True)
class Rotation:
    key_id: str
    #: False when this run finished an interrupted rotation instead of adding a key.
    added: bool
    reencrypted: int
    #: Secrets that could not be moved (audited ``vault.undecryptable``).
    undecryptable: tuple[int, ...]
    #: Former keys that no secret uses any more, to retire after the grace period.
    retirable: tuple[str, ...]


def _followed_vault(core: Pamcore) -> tuple[Vault, Path]:
    """The vault and the keyring file it follows; a key from the environment cannot change."""
    vault = core.vault
    if vault.source is None:
        raise ConfigurationError(
            f"the master key comes from {MASTER_KEY_ENV}, which holds one key and cannot "
            f"rotate; move it into a keyring file ('pamcore init' writes one) and unset it"
        )
    return vault, vault.source


def rotate_key(
    core: Pamcore,
    actor: Actor,
    progress: Callable[[str], None] = lambda _line: None,
    batch: int = ROTATION_BATCH,
) -> Rotation:
    """Add a new active key and move every secret under it; or, when secrets are still
    under older keys (an interrupted rotation), finish moving them without a new key."""
    require_admin(actor, "rotate the master key")
    vault, source = _followed_vault(core)
    with instance_lock(core, LOCK, LOCK_DOING):
        keyring = vault.keyring
        legacy = source.with_suffix(source.suffix + ".new")
        if legacy.exists():  # left by pamcore before keyrings: its key is loaded, keep it
            write_keyring(source, keyring)
            legacy.unlink()
        older = [k for k in keyring.keys if k != keyring.active_id]
        with core.reader() as db:
            pending = db.scalar(
                select(func.count()).select_from(Secret).where(Secret.key_id.in_(older))
            )
        added = not pending
        if added:
            new = MasterKey.generate()
            write_keyring(source, keyring.with_active(new, core.now()))
            with core.unit() as db:
                core.audit(
                    db,
                    actor_name(actor),
                    "vault.key_added",
                    new_key=new.key_id,
                    old_key=keyring.active_id,
                )
            progress(f"key {new.key_id} added to {source} and active: new secrets use it")
        else:
            progress(f"finishing an interrupted rotation: {pending} secrets still under older keys")
        moved, skipped = _reencrypt(core, vault, actor, batch, progress)
        active = vault.keyring.active_id
        retirable = tuple(
            use.key_id
            for use in key_uses(core, actor)
            if use.in_keyring and not use.active and use.secrets == 0
        )
        with core.unit() as db:
            core.audit(
                db,
                actor_name(actor),
                "vault.key_rotated",
                new_key=active,
                secrets=moved,
                undecryptable=len(skipped),
            )
    return Rotation(active, added, moved, tuple(skipped), retirable)


def _reencrypt(
    core: Pamcore, vault: Vault, actor: Actor, batch: int, progress: Callable[[str], None]
) -> tuple[int, list[int]]:
    """Move secrets under older keys to the active key, ``batch`` rows per transaction.
    Rows are locked (SQLite: the unit's write lock), so a secret the server changes
    meanwhile is never overwritten with its old value."""
    moved = 0
    skipped: list[int] = []
    while True:
        with core.unit() as db:
            keyring = vault.keyring
            older = [k for k in keyring.keys if k != keyring.active_id]
            query = select(Secret).where(Secret.key_id.in_(older))
            if skipped:
                query = query.where(Secret.id.not_in(skipped))
            rows = db.scalars(query.order_by(Secret.id).limit(batch).with_for_update()).all()
            if not rows:
                return moved, skipped
            for secret in rows:
                try:
                    moved += vault.reencrypt(secret)
                except UndecryptableSecret as exc:
                    skipped.append(secret.id)
                    entry, exc.audit_entry = dict(exc.audit_entry or {}), None
                    entry.pop("actor", None)
                    core.audit(db, actor_name(actor), entry.pop("action"), **entry)
        progress(f"re-encrypted {moved} secrets")


def retire_key(core: Pamcore, key_id: str, actor: Actor) -> None:
    """Remove ``key_id`` from the keyring: refused while it is active, while any secret
    uses it, and during the grace period after it stopped being active."""
    require_admin(actor, "retire a master key")
    vault, source = _followed_vault(core)
    with instance_lock(core, LOCK, LOCK_DOING):
        keyring = vault.keyring
        if key_id not in keyring.keys:
            raise NotFound(f"no key '{key_id}' in the keyring ({', '.join(keyring.keys)})")
        if key_id == keyring.active_id:
            raise PolicyDenied(
                f"key {key_id} is the active key; run 'pamcore vault rotate-key' first"
            )
        with core.reader() as db:
            using = db.scalar(
                select(func.count()).select_from(Secret).where(Secret.key_id == key_id)
            )
        if using:
            raise PolicyDenied(
                f"{using} secrets still use key {key_id}; run 'pamcore vault rotate-key' to "
                f"finish moving them to the active key"
            )
        since = keyring.superseded.get(key_id)
        now = core.now()
        if since is not None and now < since + RETIRE_GRACE:
            raise PolicyDenied(
                f"key {key_id} stopped being active at {format_utc(since, now)}; a process "
                f"that read the keyring before then may still write with it: retire it "
                f"after {format_utc(since + RETIRE_GRACE, now)}"
            )
        write_keyring(source, keyring.without(key_id))
        with core.unit() as db:
            core.audit(db, actor_name(actor), "vault.key_retired", key=key_id)
