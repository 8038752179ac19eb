"""The vault: AES-256-GCM encryption of every secret under a master key kept outside the DB.

Each ciphertext records the id of the key that made it, and binds the secret's random
``ref`` as associated data (NIST SP 800-38D §5.2.1.1), so a ciphertext copied onto another
row fails to decrypt. The master key is a 0600 file in the instance folder, or
``PAMCORE_MASTER_KEY``; ``rotate_key`` re-encrypts every secret in one transaction.
"""

from __future__ import annotations

import base64
import binascii
import os
import secrets
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from pamcore.clock import utcnow
from pamcore.errors import ConfigurationError, NotFound, VaultError
from pamcore.model import Secret

MASTER_KEY_ENV = "PAMCORE_MASTER_KEY"
NONCE_BYTES = 12  # 96-bit nonces, the GCM default (SP 800-38D §8.2.2, random construction)


class Revealed(str):
    """A decrypted secret. Behaves as ``str`` but never shows itself in a repr or traceback."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Revealed('***')"


@dataclass(frozen=True)
class MasterKey:
    key_id: str
    key: bytes

    def serialize(self) -> str:
        return f"{self.key_id}:{base64.urlsafe_b64encode(self.key).decode()}"

    def __repr__(self) -> str:
        return f"MasterKey(key_id={self.key_id!r})"

    @classmethod
    def generate(cls) -> MasterKey:
        return cls(key_id=secrets.token_hex(4), key=AESGCM.generate_key(bit_length=256))

    @classmethod
    def parse(cls, text: str, origin: str) -> MasterKey:
        key_id, sep, encoded = text.strip().partition(":")
        try:
            key = base64.urlsafe_b64decode(encoded.encode()) if sep else b""
        except (binascii.Error, ValueError):
            key = b""
        if not key_id or len(key) != 32:
            raise VaultError(
                f"the master key in {origin} is malformed (expected 'KEYID:base64 of 32 bytes')"
            )
        return cls(key_id=key_id, key=key)


def write_key_file(path: Path, key: MasterKey) -> None:
    """Write atomically with mode 0600 from the start (never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key.serialize() + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_key_file(path: Path) -> MasterKey:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise VaultError(
            f"{path} is readable by group or others (mode {stat.S_IMODE(mode):o}); "
            f"run 'chmod 600 {path}'"
        )
    return MasterKey.parse(path.read_text(), str(path))


class Vault:
    """Encrypts and decrypts :class:`~pamcore.model.Secret` rows with a keyring."""

    def __init__(self, active: MasterKey, others: tuple[MasterKey, ...] = ()) -> None:
        self.active = active
        self._keys = {k.key_id: k for k in (*others, active)}

    def __repr__(self) -> str:
        return f"Vault(active={self.active.key_id!r})"

    @classmethod
    def from_key_file(cls, path: Path) -> Vault:
        """Load the key from ``PAMCORE_MASTER_KEY`` or the file; a pending rotation's new
        key (``.new``) joins the keyring so an interrupted rotation never locks data out."""
        env = os.environ.get(MASTER_KEY_ENV)
        if env:
            return cls(MasterKey.parse(env, MASTER_KEY_ENV))
        if not path.exists():
            raise VaultError(f"no master key at {path}; run 'pamcore init' or set {MASTER_KEY_ENV}")
        active = read_key_file(path)
        pending = path.with_suffix(path.suffix + ".new")
        others = (read_key_file(pending),) if pending.exists() else ()
        return cls(active, others)

    # -- primitives -------------------------------------------------------------------------

    def _encrypt(self, key: MasterKey, plaintext: str, ref: str) -> tuple[bytes, bytes]:
        nonce = os.urandom(NONCE_BYTES)
        return nonce, AESGCM(key.key).encrypt(nonce, plaintext.encode(), _aad(ref))

    def _decrypt(self, secret: Secret) -> str:
        key = self._keys.get(secret.key_id)
        if key is None:
            raise VaultError(
                f"secret {secret.id} was encrypted with key '{secret.key_id}', which is not "
                f"loaded; restore that master key"
            )
        try:
            return (
                AESGCM(key.key).decrypt(secret.nonce, secret.ciphertext, _aad(secret.ref)).decode()
            )
        except InvalidTag:
            raise VaultError(
                f"secret {secret.id} does not decrypt: wrong master key or tampered data"
            ) from None

    # -- API --------------------------------------------------------------------------------

    def store(self, db: Session, plaintext: str, name: str | None = None) -> Secret:
        if not plaintext:
            raise VaultError("refusing to store an empty secret")
        ref = str(uuid.uuid4())
        nonce, ct = self._encrypt(self.active, plaintext, ref)
        secret = Secret(ref=ref, name=name, key_id=self.active.key_id, nonce=nonce, ciphertext=ct)
        db.add(secret)
        db.flush()
        return secret

    def replace(self, secret: Secret, plaintext: str) -> None:
        if not plaintext:
            raise VaultError("refusing to store an empty secret")
        secret.nonce, secret.ciphertext = self._encrypt(self.active, plaintext, secret.ref)
        secret.key_id = self.active.key_id
        secret.rotated_at = utcnow()

    def reveal(self, secret: Secret) -> Revealed:
        return Revealed(self._decrypt(secret))

    def named(self, db: Session, name: str) -> Secret:
        secret = db.scalar(select(Secret).where(Secret.name == name))
        if secret is None:
            raise NotFound(f"no vault secret named '{name}'")
        return secret

    def reencrypt_all(self, db: Session, new: MasterKey) -> int:
        """Decrypt each secret with its key and encrypt it with ``new``; caller commits."""
        count = 0
        for secret in db.scalars(select(Secret).order_by(Secret.id)):
            plaintext = self._decrypt(secret)
            secret.nonce, secret.ciphertext = self._encrypt(new, plaintext, secret.ref)
            secret.key_id = new.key_id
            count += 1
        db.flush()
        return count


def _aad(ref: str) -> bytes:
    return f"pamcore-secret:{ref}".encode()


def rotate_master_key(vault: Vault, key_path: Path, db: Session) -> tuple[Vault, int]:
    """Re-encrypt every secret under a new master key and replace the key file.

    Order matters for crash safety: the new key is written (``.new``) before the database
    commits, and becomes the key file only after; :meth:`Vault.from_key_file` loads both.
    """
    if os.environ.get(MASTER_KEY_ENV):
        raise ConfigurationError(
            f"the master key comes from {MASTER_KEY_ENV}; rotate it by unsetting the variable "
            f"and using the key file, or re-encrypt under a key file first"
        )
    pending = key_path.with_suffix(key_path.suffix + ".new")
    if pending.exists():
        # A rotation was interrupted after its commit: finish it before starting another,
        # or the pending key would be overwritten while secrets still need it.
        finishing = read_key_file(pending)
        vault.reencrypt_all(db, finishing)
        db.commit()
        os.replace(pending, key_path)
        vault = Vault(finishing)
    new = MasterKey.generate()
    write_key_file(pending, new)
    try:
        count = vault.reencrypt_all(db, new)
        db.commit()
    except BaseException:
        db.rollback()
        pending.unlink(missing_ok=True)
        raise
    os.replace(pending, key_path)
    return Vault(new), count
