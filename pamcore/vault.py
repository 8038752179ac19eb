"""The vault: AES-256-GCM encryption of every secret under master keys kept outside the DB.

Each ciphertext records the id of the key that made it, and binds the secret's random
``ref`` as associated data (NIST SP 800-38D §5.2.1.1), so a ciphertext copied onto another
row fails to decrypt. The master keys are a keyring, a 0600 file in the instance folder
(or one key in ``PAMCORE_MASTER_KEY``): several keys by id, one of them active. Every
vault operation first checks whether the file changed and reloads it, so a key rotation by
another process is seen before the next secret is written: no secret is ever encrypted
under a key that is not in the keyring on disk. Rotation itself is a service
(:mod:`pamcore.services.vault_keys`); the design is in ``docs/design/vault-keyring.md``.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import os
import secrets
import stat
import threading
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ClassVar, Generic, TypeVar

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select
from sqlalchemy.orm import Session

from pamcore.errors import NotFound, VaultError
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


class UndecryptableSecret(VaultError):
    """A secret that the loaded keyring cannot decrypt: its key is missing, or the data or
    key is wrong. Carries an audit entry (``vault.undecryptable``) with the key id."""

    def __init__(self, secret: Secret, reason: str) -> None:
        super().__init__(f"secret {secret.id} {reason}")
        self.secret_id = secret.id
        self.key_id = secret.key_id
        self.audited(
            "system:vault",
            "vault.undecryptable",
            target=f"secret {secret.id}",
            key_id=secret.key_id,
        )


@dataclass(frozen=True)
class Keyring:
    """Master keys by id; ``active_id`` encrypts, every key decrypts. ``superseded`` says
    when each former active key stopped being active (retirement waits a grace period).
    ``attributes`` are ``@name=value`` lines a subclass gives meaning to (the vault has none).
    """

    active_id: str
    keys: dict[str, MasterKey]
    superseded: dict[str, dt.datetime] = field(default_factory=dict)
    attributes: dict[str, str] = field(default_factory=dict)

    HEADER: ClassVar[str] = (
        "# pamcore master keyring: keep it secret, back it up with the database.\n"
        "# One key per line; '*' marks the active key. Manage it with 'pamcore vault'.\n"
    )
    #: What the file is and how to get one, for the error when it is missing.
    NAME: ClassVar[str] = "master keyring"
    MISSING_HINT: ClassVar[str] = f"run 'pamcore init' or set {MASTER_KEY_ENV}"

    def __post_init__(self) -> None:
        if self.active_id not in self.keys:
            raise VaultError(f"the keyring has no key '{self.active_id}' to make active")

    def __repr__(self) -> str:
        return f"Keyring(active={self.active_id!r}, keys={sorted(self.keys)!r})"

    @classmethod
    def of(cls, key: MasterKey) -> Keyring:
        return cls(key.key_id, {key.key_id: key})

    @property
    def active(self) -> MasterKey:
        return self.keys[self.active_id]

    def with_active(self, key: MasterKey, now: dt.datetime) -> Keyring:
        """``key`` added and made active; the former active key stays for decryption."""
        if key.key_id in self.keys:
            raise VaultError(f"key id '{key.key_id}' is already in the keyring")
        superseded = {**self.superseded, self.active_id: now}
        return replace(
            self, active_id=key.key_id, keys={**self.keys, key.key_id: key}, superseded=superseded
        )

    def with_key(self, key: MasterKey) -> Keyring:
        """``key`` added for decryption only (not active)."""
        return replace(self, keys={**self.keys, key.key_id: key})

    def without(self, key_id: str) -> Keyring:
        keys = {k: v for k, v in self.keys.items() if k != key_id}
        superseded = {k: v for k, v in self.superseded.items() if k != key_id}
        return replace(self, keys=keys, superseded=superseded)

    def serialize(self) -> str:
        lines = [self.HEADER]
        lines += [f"@{name}={value}\n" for name, value in self.attributes.items()]
        for key_id, key in self.keys.items():
            mark = "*" if key_id == self.active_id else ""
            when = self.superseded.get(key_id)
            note = f" superseded={when.astimezone(dt.UTC).isoformat()}" if when else ""
            lines.append(f"{mark}{key.serialize()}{note}\n")
        return "".join(lines)

    @classmethod
    def parse(cls, text: str, origin: str) -> Keyring:
        """The keyring format above; a file with one unmarked key (pamcore before keyrings)
        is a keyring of that one active key."""
        keys: dict[str, MasterKey] = {}
        superseded: dict[str, dt.datetime] = {}
        attributes: dict[str, str] = {}
        active: list[str] = []
        for number, raw in enumerate(text.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            if line.startswith("@"):
                name, sep, value = line.removeprefix("@").partition("=")
                if not name or not sep:
                    raise VaultError(f"{origin} line {number}: expected '@name=value'")
                attributes[name] = value
                continue
            entry, _, note = line.partition(" ")
            key = MasterKey.parse(entry.removeprefix("*"), f"{origin} line {number}")
            if key.key_id in keys:
                raise VaultError(f"{origin} line {number}: key id '{key.key_id}' appears twice")
            keys[key.key_id] = key
            if entry.startswith("*"):
                active.append(key.key_id)
            if note.startswith("superseded="):
                try:
                    when = dt.datetime.fromisoformat(note.removeprefix("superseded="))
                except ValueError:
                    raise VaultError(
                        f"{origin} line {number}: unreadable superseded time"
                    ) from None
                superseded[key.key_id] = when
        if not active and len(keys) == 1:
            active = list(keys)
        if len(active) != 1:
            raise VaultError(
                f"{origin} must mark exactly one key active with '*' (found {len(active)})"
            )
        return cls(active[0], keys, superseded, attributes)


def write_keyring(path: Path, keyring: Keyring) -> None:
    """Write atomically and durably with mode 0600 from the start (never world-readable,
    even briefly): a temporary file, fsync, rename, fsync of the folder. Only after this
    returns may a secret be encrypted under a key it added."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(keyring.serialize())
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def write_key_file(path: Path, key: MasterKey) -> None:
    """A new keyring holding ``key`` as its active key (``pamcore init``)."""
    write_keyring(path, Keyring.of(key))


#: What identifies one version of the keyring file: device, inode, mtime, size.
FileStamp = tuple[int, int, int, int]
K = TypeVar("K", bound=Keyring)


def read_keyring(path: Path, kind: type[K] = Keyring) -> tuple[K, FileStamp]:  # type: ignore[assignment]
    """The keyring in ``path`` and the stamp of the version read (fstat of the open file,
    so the two always agree even when the file is replaced meanwhile)."""
    try:
        with open(path) as fh:
            info = os.fstat(fh.fileno())
            text = fh.read()
    except FileNotFoundError:
        raise VaultError(f"no {kind.NAME} at {path}; {kind.MISSING_HINT}") from None
    except OSError as exc:
        raise VaultError(f"cannot read the {kind.NAME} {path}: {exc.strerror}") from None
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise VaultError(
            f"{path} is readable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"run 'chmod 600 {path}'"
        )
    keyring = kind.parse(text, str(path))
    # A rotation by pamcore before keyrings left its new key beside the file when it was
    # interrupted after its commit: keep it loaded until a rotation folds it in.
    legacy = path.with_suffix(path.suffix + ".new")
    if legacy.exists():
        extra, _ = read_keyring(legacy, kind)
        for key in extra.keys.values():
            if key.key_id not in keyring.keys:
                keyring = keyring.with_key(key)
    return keyring, (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


def _file_stamp(path: Path) -> FileStamp | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino, info.st_mtime_ns, info.st_size)


class KeyringFile(Generic[K]):
    """A keyring file as this process sees it now: every read ``stat``s the file and reloads
    a changed one, so a rotation by another process is followed without a restart."""

    def __init__(self, path: Path, kind: type[K]) -> None:
        self.path = path
        self._kind = kind
        self._keyring, self._stamp = read_keyring(path, kind)
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"KeyringFile({str(self.path)!r})"

    @property
    def keyring(self) -> K:
        """The current keyring, reloaded first if the file changed."""
        if _file_stamp(self.path) != self._stamp:
            with self._lock:
                if _file_stamp(self.path) != self._stamp:
                    self._keyring, self._stamp = read_keyring(self.path, self._kind)
        return self._keyring


class Vault:
    """Encrypts and decrypts :class:`~pamcore.model.Secret` rows with a keyring.

    With a ``source`` file, every operation checks the file's stamp first and reloads a
    changed keyring, so this process follows rotations made by others without a restart.
    """

    def __init__(self, keyring: Keyring | KeyringFile[Keyring]) -> None:
        self._keyring = keyring

    def __repr__(self) -> str:
        return f"Vault(active={self.keyring.active_id!r})"

    @classmethod
    def from_key_file(cls, path: Path) -> Vault:
        """The keyring from ``PAMCORE_MASTER_KEY`` (one fixed key) or the file (followed)."""
        env = os.environ.get(MASTER_KEY_ENV)
        if env:
            return cls(Keyring.of(MasterKey.parse(env, MASTER_KEY_ENV)))
        return cls(KeyringFile(path, Keyring))

    @property
    def source(self) -> Path | None:
        """The keyring file this vault follows; ``None`` for a key from the environment."""
        return self._keyring.path if isinstance(self._keyring, KeyringFile) else None

    @property
    def keyring(self) -> Keyring:
        """The current keyring, reloaded first if the file changed."""
        if isinstance(self._keyring, KeyringFile):
            return self._keyring.keyring
        return self._keyring

    @property
    def active(self) -> MasterKey:
        return self.keyring.active

    # -- primitives -------------------------------------------------------------------------

    def _encrypt(self, plaintext: str, ref: str) -> tuple[str, bytes, bytes]:
        """(key id, nonce, ciphertext) under the active key of the keyring on disk now."""
        key = self.active
        nonce = os.urandom(NONCE_BYTES)
        return key.key_id, nonce, AESGCM(key.key).encrypt(nonce, plaintext.encode(), _aad(ref))

    def _decrypt(self, secret: Secret) -> str:
        key = self.keyring.keys.get(secret.key_id)
        if key is None:
            raise UndecryptableSecret(
                secret,
                f"was encrypted with key '{secret.key_id}', which is not in the keyring; "
                f"restore that key into the keyring file",
            )
        try:
            return (
                AESGCM(key.key).decrypt(secret.nonce, secret.ciphertext, _aad(secret.ref)).decode()
            )
        except InvalidTag:
            raise UndecryptableSecret(
                secret, f"does not decrypt with key '{key.key_id}': wrong key or tampered data"
            ) from None

    # -- API --------------------------------------------------------------------------------

    def store(self, db: Session, plaintext: str, name: str | None = None) -> Secret:
        if not plaintext:
            raise VaultError("refusing to store an empty secret")
        ref = str(uuid.uuid4())
        key_id, nonce, ct = self._encrypt(plaintext, ref)
        secret = Secret(ref=ref, name=name, key_id=key_id, nonce=nonce, ciphertext=ct)
        db.add(secret)
        db.flush()
        return secret

    def replace(self, secret: Secret, plaintext: str, now: dt.datetime) -> None:
        """A new value for ``secret`` (``now``: the core's time, kept as ``rotated_at``)."""
        if not plaintext:
            raise VaultError("refusing to store an empty secret")
        secret.key_id, secret.nonce, secret.ciphertext = self._encrypt(plaintext, secret.ref)
        secret.rotated_at = now

    def reveal(self, secret: Secret) -> Revealed:
        return Revealed(self._decrypt(secret))

    def reencrypt(self, secret: Secret) -> bool:
        """Move ``secret`` under the active key, value unchanged; ``False`` if it was there."""
        if secret.key_id == self.active.key_id:
            return False
        plaintext = self._decrypt(secret)
        secret.key_id, secret.nonce, secret.ciphertext = self._encrypt(plaintext, secret.ref)
        return True

    def named(self, db: Session, name: str) -> Secret:
        secret = db.scalar(select(Secret).where(Secret.name == name))
        if secret is None:
            raise NotFound(f"no vault secret named '{name}'")
        return secret


def _aad(ref: str) -> bytes:
    return f"pamcore-secret:{ref}".encode()
