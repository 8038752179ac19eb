"""The vault: AES-256-GCM at rest, the keyring, rotation and retirement, tamper detection,
no leaks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError, NotFound, PolicyDenied, VaultError
from pamcore.instance_lock import LockBusy, instance_lock
from pamcore.model import AuditEvent, Credential, Secret
from pamcore.services import vault_keys
from pamcore.services.common import SystemActor
from pamcore.testing import T0
from pamcore.testing import builders as b
from pamcore.vault import (
    MASTER_KEY_ENV,
    Keyring,
    MasterKey,
    Vault,
    read_keyring,
    write_key_file,
    write_keyring,
)

PASSWORD = "Zq7-unique-vault-secret-91"
TEST = SystemActor("test")
PRIVATE_KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEunique\n-----END"


def store_credential(core: Pamcore) -> int:
    with core.unit() as db:
        return b.make_credential(core, db, "svc", "svc", PASSWORD, PRIVATE_KEY).id


def reveal(core: Pamcore, cred_id: int) -> tuple[str, str]:
    with core.reader() as db:
        cred = db.get(Credential, cred_id)
        return (
            core.vault.reveal(cred.password_secret),
            core.vault.reveal(cred.private_key_secret),
        )


def test_round_trip_and_key_id(core: Pamcore) -> None:
    cid = store_credential(core)
    assert reveal(core, cid) == (PASSWORD, PRIVATE_KEY)
    with core.reader() as db:
        secret = db.scalars(select(Secret)).first()
        assert secret.key_id == core.vault.active.key_id
        assert len(secret.nonce) == 12
        assert PASSWORD.encode() not in secret.ciphertext


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # it reads the file's bytes
def test_no_plaintext_in_the_sqlite_file(core: Pamcore, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    cid = store_credential(core)
    reveal(core, cid)
    core.dispose()
    db_file = Path(core.engine.url.database)
    raw = b"".join(p.read_bytes() for p in db_file.parent.glob(db_file.name + "*"))
    assert raw  # the file and its WAL exist
    for secret in (PASSWORD, PRIVATE_KEY):
        assert secret.encode() not in raw
        assert secret not in caplog.text


def test_reprs_hide_secrets(core: Pamcore) -> None:
    cid = store_credential(core)
    password, key = reveal(core, cid)
    assert PASSWORD not in repr(password) and PRIVATE_KEY not in repr(key)
    assert "key" not in repr(core.vault.active).replace("key_id", "")
    with core.reader() as db:
        assert PASSWORD not in repr(db.get(Credential, cid))


def test_ciphertext_moved_to_another_row_does_not_decrypt(core: Pamcore) -> None:
    cid = store_credential(core)
    with core.unit() as db:
        cred = db.get(Credential, cid)
        a, other = cred.password_secret, cred.private_key_secret
        a.ciphertext, a.nonce = other.ciphertext, other.nonce
    with pytest.raises(VaultError, match="does not decrypt") as err:
        reveal(core, cid)
    assert PASSWORD not in str(err.value) and PRIVATE_KEY not in str(err.value)


def test_wrong_master_key_is_a_clear_error_and_an_audited_alert(core: Pamcore) -> None:
    cid = store_credential(core)
    key_id = core.vault.active.key_id
    core.replace_vault(Vault(Keyring.of(MasterKey(key_id, os.urandom(32)))))
    with pytest.raises(VaultError, match="wrong key or tampered data"):
        reveal(core, cid)
    with core.reader() as db:
        alert = db.scalars(select(AuditEvent).where(AuditEvent.action == "vault.undecryptable"))
        assert [(e.target, e.details["key_id"]) for e in alert] == [
            (f"secret {secret_ids(core)[0]}", key_id)
        ]
    assert [u.secret_id for u in vault_keys.undecryptable_secrets(core, TEST)] == [
        secret_ids(core)[0]
    ]


def secret_ids(core: Pamcore) -> list[int]:
    with core.reader() as db:
        return list(db.scalars(select(Secret.id).order_by(Secret.id)))


def key_ids(core: Pamcore) -> set[str]:
    with core.reader() as db:
        return set(db.scalars(select(Secret.key_id)))


def test_rotation_adds_a_key_then_moves_every_secret(core: Pamcore) -> None:
    cid = store_credential(core)
    old = core.vault.active.key_id
    rotation = vault_keys.rotate_key(core, TEST)
    assert rotation.added and rotation.reencrypted == 2 and rotation.retirable == (old,)
    keyring, _ = read_keyring(core.config.master_key_path)
    assert keyring.active_id == rotation.key_id != old
    assert set(keyring.keys) == {old, rotation.key_id}
    assert keyring.superseded[old] == core.now()
    assert oct(core.config.master_key_path.stat().st_mode & 0o777) == "0o600"
    assert reveal(core, cid) == (PASSWORD, PRIVATE_KEY)
    assert key_ids(core) == {rotation.key_id}
    uses = {u.key_id: (u.secrets, u.active) for u in vault_keys.key_uses(core, TEST)}
    assert uses == {rotation.key_id: (2, True), old: (0, False)}


def test_another_process_sees_the_rotation_before_its_next_write(core: Pamcore) -> None:
    """A second Vault on the same file (another process, e.g. the running server) follows
    the keyring: it encrypts under the new key and still decrypts the old one's rows."""
    cid = store_credential(core)
    server = Vault.from_key_file(core.config.master_key_path)
    with core.unit() as db:
        before = server.store(db, "written before")
    rotation = vault_keys.rotate_key(core, TEST)
    with core.unit() as db:
        after = server.store(db, "written after")
        assert after.key_id == rotation.key_id
        assert server.reveal(fresh_secret(db, before)) == "written before"
    assert reveal(core, cid) == (PASSWORD, PRIVATE_KEY)


def fresh_secret(db, secret: Secret) -> Secret:  # type: ignore[no-untyped-def]
    return db.get(Secret, secret.id)


def test_an_interrupted_rotation_is_finished_by_the_next_run(core: Pamcore) -> None:
    """Killed after the new key was written and one batch moved: both keys are in the
    keyring, so every secret reads; the next run finishes without adding a third key."""
    for n in range(5):
        with core.unit() as db:
            core.vault.store(db, f"secret number {n}")

    def die_after_first_batch(line: str) -> None:
        if line.startswith("re-encrypted"):
            raise KeyboardInterrupt  # stands in for kill -9 (the real one: test_vault_online)

    with pytest.raises(KeyboardInterrupt):
        vault_keys.rotate_key(core, TEST, progress=die_after_first_batch, batch=2)
    keyring, _ = read_keyring(core.config.master_key_path)
    assert len(keyring.keys) == 2 and len(key_ids(core)) == 2
    with core.reader() as db:
        assert sorted(core.vault.reveal(s) for s in db.scalars(select(Secret))) == [
            f"secret number {n}" for n in range(5)
        ]
    finished = vault_keys.rotate_key(core, TEST)
    assert not finished.added and finished.key_id == keyring.active_id
    assert finished.reencrypted == 3
    assert key_ids(core) == {keyring.active_id}
    assert len(read_keyring(core.config.master_key_path)[0].keys) == 2


def test_an_undecryptable_secret_is_skipped_reported_and_audited(core: Pamcore) -> None:
    cid = store_credential(core)
    with core.unit() as db:  # a secret under a key the keyring lacks
        db.get(Credential, cid).password_secret.key_id = "lost"
    rotation = vault_keys.rotate_key(core, TEST)
    assert len(rotation.undecryptable) == 0 and rotation.reencrypted == 1
    lost = vault_keys.undecryptable_secrets(core, TEST)
    assert [(u.key_id, u.reason) for u in lost] == [("lost", "key 'lost' is not loaded")]
    uses = {u.key_id: u.in_keyring for u in vault_keys.key_uses(core, TEST)}
    assert uses["lost"] is False


def test_retirement_rules(core: Pamcore, clock: FrozenClock) -> None:
    store_credential(core)
    old = core.vault.active.key_id
    with pytest.raises(PolicyDenied, match="is the active key"):
        vault_keys.retire_key(core, old, TEST)
    with pytest.raises(NotFound, match="no key 'nope'"):
        vault_keys.retire_key(core, "nope", TEST)
    stale = Vault(read_keyring(core.config.master_key_path)[0])  # a process yet to reload
    vault_keys.rotate_key(core, TEST)
    with core.unit() as db:
        stale.store(db, "written by a process that read the keyring before the rotation")
    with pytest.raises(PolicyDenied, match="1 secrets still use key"):
        vault_keys.retire_key(core, old, TEST)
    vault_keys.rotate_key(core, TEST)  # finishes: moves that row
    with pytest.raises(PolicyDenied, match="may still write with it"):
        vault_keys.retire_key(core, old, TEST)
    clock.advance(minutes=6)
    vault_keys.retire_key(core, old, TEST)
    assert old not in read_keyring(core.config.master_key_path)[0].keys
    with core.reader() as db:
        actions = [e.action for e in db.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions[-1] == "vault.key_retired" and "vault.key_added" in actions


def test_two_rotations_never_overlap(core: Pamcore) -> None:
    with instance_lock(core, vault_keys.LOCK, "a test"):
        with pytest.raises(LockBusy, match=rf"already running \(process {os.getpid()}\)"):
            vault_keys.rotate_key(core, TEST)


def test_keyring_file_format(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    path = tmp_path / "master.key"
    with pytest.raises(VaultError, match="run 'pamcore init'"):
        Vault.from_key_file(path)
    first = MasterKey.generate()
    write_key_file(path, first)
    path.chmod(0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        Vault.from_key_file(path)
    path.chmod(0o600)
    path.write_text("k1:not-base64!!")
    with pytest.raises(VaultError, match="malformed"):
        Vault.from_key_file(path)
    # pamcore before keyrings wrote one unmarked key: still read, as the active key
    path.write_text(first.serialize() + "\n")
    assert Vault.from_key_file(path).active == first
    second = MasterKey.generate()
    path.write_text(f"{first.serialize()}\n{second.serialize()}\n")
    with pytest.raises(VaultError, match="exactly one key active"):
        Vault.from_key_file(path)
    ring = Keyring.of(first).with_active(second, T0)
    write_keyring(path, ring)
    assert read_keyring(path)[0] == ring
    assert "first" not in path.read_text() and repr(ring).count(first.key_id) == 1


def test_key_from_environment_cannot_rotate(core: Pamcore, monkeypatch) -> None:
    key = MasterKey.generate()
    monkeypatch.setenv(MASTER_KEY_ENV, key.serialize())
    core.replace_vault(Vault.from_key_file(Path("/nonexistent")))
    assert core.vault.active.key_id == key.key_id
    with pytest.raises(ConfigurationError, match="PAMCORE_MASTER_KEY"):
        vault_keys.rotate_key(core, TEST)


def test_empty_secret_refused(core: Pamcore) -> None:
    with pytest.raises(VaultError, match="empty"), core.unit() as db:
        core.vault.store(db, "")
