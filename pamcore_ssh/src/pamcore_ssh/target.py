"""The outgoing leg: connect to the resource as the session's login account, with the
injected password or key, verifying its host key before any credential is sent.

Legacy algorithms are appended per resource (``+alg``, so modern ones stay preferred) and
never touch the user-facing side. Every failure becomes one :class:`TargetError` line.
What the proxy needs of the target beyond the kit's admission (host-key policy, algorithms,
terminal assistants) is read in the admission's unit of work by :func:`ssh_target`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import asyncssh
from sqlalchemy.orm import Session

from pamcore.core import Pamcore
from pamcore.model import ActivitySession, Resource
from pamcore.proxy import Admitted, host_key_refusal
from pamcore_ssh.hooks import ssh_algorithms, ssh_terminal_assistants
from pamcore_ssh.hookspecs import TerminalAssistant
from pamcore_ssh.hostkeys import fingerprint, key_line

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 15.0
#: pamcore hook kinds -> asyncssh ``connect()`` keyword arguments.
ALGORITHM_KWARGS = {
    "kex": "kex_algs",
    "encryption": "encryption_algs",
    "mac": "mac_algs",
    "server_host_key": "server_host_key_algs",
}
LEGACY_PLUGIN = "pamcore-cisco-legacy"


class TargetError(Exception):
    """The target could not be reached or refused us; the message is for the user."""


@dataclass(frozen=True)
class TargetSpec:
    """Where and as whom to connect; secrets are kept out of ``repr``."""

    resource_id: int
    resource_name: str
    address: str
    port: int
    username: str
    password: str | None = field(default=None, repr=False)
    private_key: str | None = field(default=None, repr=False)
    pinned_key: str | None = None
    algorithms: dict[str, list[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class SshTarget:
    """The SSH part of an admitted connection (the kit's ``extra``), read in the
    admission's unit of work."""

    #: A detached copy of the resource's pin and first-use flag, for the host-key rule.
    key_policy: Resource
    #: Plugins' extra algorithms toward this resource (``pamcore_ssh_algorithms``).
    algorithms: dict[str, list[str]]
    #: Plugins' helpers for each terminal channel (``pamcore_ssh_terminal_assistant``);
    #: they may hold a vaulted secret, so they stay out of ``repr``.
    assistants: tuple[Callable[[], TerminalAssistant], ...] = field(default=(), repr=False)


def ssh_target(
    core: Pamcore, db: Session, session: ActivitySession, resource: Resource
) -> SshTarget:
    """The kit's ``extra`` builder for the SSH proxy."""
    return SshTarget(
        key_policy=Resource(
            name=resource.name,
            host_key=resource.host_key,
            trust_on_first_use=resource.trust_on_first_use,
        ),
        algorithms=ssh_algorithms(core.hooks, resource, core.config),
        assistants=tuple(ssh_terminal_assistants(core.hooks, core, db, session, resource)),
    )


def target_spec(admitted: Admitted[SshTarget]) -> TargetSpec:
    """Where and as whom the admitted connection goes on."""
    return TargetSpec(
        resource_id=admitted.resource_id,
        resource_name=admitted.resource_name,
        address=admitted.address,
        port=admitted.port,
        username=admitted.login_account,
        password=admitted.password,
        private_key=admitted.private_key,
        pinned_key=admitted.extra.key_policy.host_key,
        algorithms=admitted.extra.algorithms,
    )


def key_refusal(admitted: Admitted[SshTarget], line: str, offered: str) -> str | None:
    """The core's host-key rule for the key the target offered; ``None``: trusted."""
    return host_key_refusal(admitted.extra.key_policy, line, offered)


@dataclass
class HostKeySeen:
    """What the target offered (filled during key exchange, for pinning and the audit)."""

    line: str = ""
    fingerprint: str = ""
    #: The key exchange method chosen (RFC 4253 §7.1), e.g. ``diffie-hellman-group1-sha1``.
    kex: str = ""


#: (offered key line, offered fingerprint) -> a refusal, or ``None`` to trust the key.
HostKeyJudge = Callable[[str, str], str | None]


class _VerifyingClient(asyncssh.SSHClient):
    """Asks the core's rule (``host_key_refusal``) about the key the target offers."""

    def __init__(self, judge: HostKeyJudge, seen: HostKeySeen) -> None:
        self._judge = judge
        self._seen = seen
        self.refusal: str | None = None

    def connection_made(self, conn: asyncssh.SSHClientConnection) -> None:
        """Note the key exchange method as it is chosen: asyncssh has no public API for it
        (docs/design/ssh.md §1) and forgets it once keys are in use. Relies on asyncssh's
        ``_choose_alg`` (pinned); without it only ``kex`` stays empty."""
        choose = getattr(conn, "_choose_alg", None)
        if choose is None:
            return

        def noting(kind: str, local: list[bytes], remote: list[bytes]) -> bytes:
            chosen: bytes = choose(kind, local, remote)
            if kind == "key exchange":
                self._seen.kex = chosen.decode("ascii", "replace")
            return chosen

        conn._choose_alg = noting  # type: ignore[method-assign]

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self._seen.line, self._seen.fingerprint = key_line(key), fingerprint(key)
        self.refusal = self._judge(self._seen.line, self._seen.fingerprint)
        return self.refusal is None


def negotiated(conn: asyncssh.SSHClientConnection, seen: HostKeySeen) -> dict[str, str]:
    """The algorithms in use on ``conn``: key exchange, cipher, MAC, host-key type."""
    key = conn.get_server_host_key()
    return {
        "kex": seen.kex,
        "cipher": str(conn.get_extra_info("send_cipher", "")),
        "mac": str(conn.get_extra_info("send_mac", "")),
        "host_key": key.get_algorithm() if key else "",
    }


#: :func:`negotiated` keys -> the hook's algorithm kinds.
NEGOTIATED_KINDS = {
    "kex": "kex",
    "cipher": "encryption",
    "mac": "mac",
    "host_key": "server_host_key",
}


def legacy_in_use(spec: TargetSpec, used: dict[str, str]) -> list[str]:
    """The negotiated names that only a plugin enabled for this resource (``+alg``)."""
    return [
        name
        for key, name in used.items()
        if name and name in spec.algorithms.get(NEGOTIATED_KINDS[key], [])
    ]


def connect_options(spec: TargetSpec) -> dict[str, object]:
    """asyncssh ``connect()`` options: credentials, host-key pinning, extra algorithms."""
    options: dict[str, object] = {
        "username": spec.username,
        "agent_path": None,
        "config": None,
        "client_keys": [asyncssh.import_private_key(spec.private_key)] if spec.private_key else [],
        "password": spec.password,
        "preferred_auth": "publickey,password,keyboard-interactive",
        "connect_timeout": CONNECT_TIMEOUT,
        "login_timeout": CONNECT_TIMEOUT,
    }
    pinned = _pinned(spec.pinned_key)
    # A pinned key: only its algorithms are negotiated, and it alone is trusted up front;
    # anything else goes to the verifying client's judge (mismatch or first use).
    options["known_hosts"] = ([pinned] if pinned else [], [], [])
    for kind, names in spec.algorithms.items():
        if names:
            options[ALGORITHM_KWARGS[kind]] = "+" + ",".join(names)
    return options


def _pinned(text: str | None) -> asyncssh.SSHKey | None:
    if not text or text.lower().startswith("sha256:"):
        return None
    try:
        return asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        return None


async def connect_target(
    spec: TargetSpec,
    judge: HostKeyJudge,
    seen: HostKeySeen,
    hint: Callable[[str], Awaitable[str | None]],
) -> asyncssh.SSHClientConnection:
    """Connect and authenticate as the login account; raises :class:`TargetError`.

    ``hint`` explains a failed key exchange (the ``pamcore_ssh_handshake_hint`` hook).
    """
    client = _VerifyingClient(judge, seen)
    where = f"{spec.resource_name} ({spec.address} port {spec.port})"
    try:
        conn, _ = await asyncssh.create_connection(
            lambda: client, spec.address, spec.port, **connect_options(spec)
        )
        return conn
    except asyncssh.HostKeyNotVerifiable:
        raise TargetError(client.refusal or f"the host key of {where} is not trusted") from None
    except asyncssh.KeyExchangeFailed as exc:
        raise TargetError(await _handshake(where, exc.reason, hint)) from None
    except asyncssh.PermissionDenied:
        raise TargetError(
            f"{where} refused the session's account {spec.username}; ask an administrator "
            f"to check its credential"
        ) from None
    except (asyncssh.ConnectionLost, asyncssh.DisconnectError) as exc:
        if not seen.line:  # lost before the host key: most often a key-exchange mismatch
            raise TargetError(await _handshake(where, exc.reason, hint)) from None
        raise TargetError(f"{where} closed the connection ({exc.reason})") from None
    except TimeoutError:
        raise TargetError(f"cannot reach {where}: no answer") from None
    except OSError as exc:
        raise TargetError(f"cannot reach {where}: {exc.strerror or type(exc).__name__}") from None


async def _handshake(where: str, reason: str, hint: Callable[[str], Awaitable[str | None]]) -> str:
    explained = await hint(reason)
    if explained:
        return " ".join(explained.split())
    return (
        f"no common SSH algorithms with {where} ({reason}); an old device may need legacy "
        f"algorithms: an administrator can install the {LEGACY_PLUGIN} plugin and enable it "
        f"for this resource"
    )


async def close_target(conn: asyncssh.SSHClientConnection | None) -> None:
    if conn is None:
        return
    conn.close()
    with contextlib.suppress(TimeoutError, OSError, asyncssh.Error):
        await asyncio.wait_for(conn.wait_closed(), 5)
