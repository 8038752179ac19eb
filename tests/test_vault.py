"""The vault: AES-256-GCM at rest, key ids, rotation, tamper detection, no leaks."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError, VaultError
from pamcore.model import Credential, Secret
from pamcore.testing import builders as b
from pamcore.vault import MASTER_KEY_ENV, MasterKey, Vault, rotate_master_key, write_key_file

PASSWORD = "Zq7-unique-vault-secret-91"
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


def test_wrong_master_key_is_a_clear_error(core: Pamcore) -> None:
    cid = store_credential(core)
    core.replace_vault(Vault(MasterKey(core.vault.active.key_id, os.urandom(32))))
    with pytest.raises(VaultError, match="wrong master key or tampered data"):
        reveal(core, cid)


def test_rotation_reencrypts_everything(core: Pamcore) -> None:
    cid = store_credential(core)
    old = core.vault.active.key_id
    key_path = core.config.master_key_path
    with core.unit() as db:
        new_vault, count = rotate_master_key(core.vault, key_path, db)
    assert count == 2
    assert new_vault.active.key_id != old
    assert Vault.from_key_file(key_path).active.key_id == new_vault.active.key_id
    assert not key_path.with_suffix(".key.new").exists()
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    core.replace_vault(Vault.from_key_file(key_path))
    assert reveal(core, cid) == (PASSWORD, PRIVATE_KEY)
    with core.reader() as db:
        assert {s.key_id for s in db.scalars(select(Secret))} == {new_vault.active.key_id}


def test_interrupted_rotation_keeps_data_readable(core: Pamcore, monkeypatch) -> None:
    """If the process dies after the database committed but before the key file was
    replaced, the pending key (``.new``) still opens every secret."""
    cid = store_credential(core)
    key_path = core.config.master_key_path

    real_replace = os.replace

    def crash(src, dst):
        if Path(dst) == key_path:
            raise KeyboardInterrupt  # power cut just before the key file is swapped
        real_replace(src, dst)

    monkeypatch.setattr("pamcore.vault.os.replace", crash)
    with pytest.raises(KeyboardInterrupt), core.unit() as db:
        rotate_master_key(core.vault, key_path, db)
    monkeypatch.undo()
    assert key_path.with_suffix(".key.new").exists()
    core.replace_vault(Vault.from_key_file(key_path))
    assert reveal(core, cid) == (PASSWORD, PRIVATE_KEY)
    # the next rotation first finishes the interrupted one, then rotates again
    with core.unit() as db:
        new_vault, _ = rotate_master_key(core.vault, key_path, db)
    core.replace_vault(Vault.from_key_file(key_path))
    assert core.vault.active.key_id == new_vault.active.key_id
    assert reveal(core, cid) == (PASSWORD, PRIVATE_KEY)


def test_failed_rotation_leaves_old_key(core: Pamcore) -> None:
    cid = store_credential(core)
    with core.unit() as db:  # a secret under a key nobody has: rotation cannot decrypt it
        db.get(Credential, cid).password_secret.key_id = "lost"
    key_path = core.config.master_key_path
    before = key_path.read_text()
    with pytest.raises(VaultError, match="restore that master key"), core.unit() as db:
        rotate_master_key(core.vault, key_path, db)
    assert key_path.read_text() == before
    assert not key_path.with_suffix(".key.new").exists()


def test_key_file_rules(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv(MASTER_KEY_ENV, raising=False)
    path = tmp_path / "master.key"
    with pytest.raises(VaultError, match="run 'pamcore init'"):
        Vault.from_key_file(path)
    write_key_file(path, MasterKey.generate())
    path.chmod(0o644)
    with pytest.raises(VaultError, match="chmod 600"):
        Vault.from_key_file(path)
    path.chmod(0o600)
    path.write_text("k1:not-base64!!")
    with pytest.raises(VaultError, match="malformed"):
        Vault.from_key_file(path)


def test_key_from_environment(tmp_path: Path, monkeypatch) -> None:
    key = MasterKey.generate()
    monkeypatch.setenv(MASTER_KEY_ENV, key.serialize())
    vault = Vault.from_key_file(tmp_path / "absent.key")
    assert vault.active.key_id == key.key_id
    with pytest.raises(ConfigurationError, match="PAMCORE_MASTER_KEY"):
        rotate_master_key(vault, tmp_path / "absent.key", None)  # type: ignore[arg-type]


def test_empty_secret_refused(core: Pamcore) -> None:
    with pytest.raises(VaultError, match="empty"), core.unit() as db:
        core.vault.store(db, "")
