"""Per-resource opt-in to legacy SSH algorithms (``diffie-hellman-group1-sha1`` and friends).

Legacy algorithms are data enabled per outgoing connection, never globally (asyncssh's
habit): a resource opts in with ``cisco_legacy.legacy_algorithms = cisco-legacy``; the SSH
plugin asks :func:`pamcore_ssh_algorithms` before it connects to that resource only. When a
handshake fails, :func:`pamcore_ssh_handshake_hint` reads the server's KEXINIT
(:mod:`pamcore_cisco_legacy.kexinit`) and says what both sides offered and what to run.
"""

from __future__ import annotations

import asyncio
import logging
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from asyncssh.encryption import get_default_encryption_algs
from asyncssh.kex import get_default_kex_algs
from asyncssh.mac import get_default_mac_algs
from asyncssh.public_key import get_default_public_key_algs

from pamcore import hookimpl
from pamcore.registry import ResourceSetting
from pamcore_cisco_legacy.kexinit import KexinitError, ServerOffer, probe_kexinit

if TYPE_CHECKING:
    from pamcore.model import Resource

PLUGIN = "cisco_legacy"
KEY = "legacy_algorithms"
OFF = "off"
PROFILE = "cisco-legacy"
GROUP1 = "diffie-hellman-group1-sha1"
#: Seconds the handshake hint may spend reading the server's KEXINIT.
PROBE_TIMEOUT = 3.0
#: Algorithm kinds in negotiation order (RFC 4253 §7.1), as the user reads them.
KIND_LABELS = {
    "kex": "key exchange",
    "server_host_key": "host key",
    "encryption": "encryption",
    "mac": "MAC",
}

log = logging.getLogger(__name__)

#: Profiles an operator can name; each lists algorithms appended after the modern defaults.
PROFILES: dict[str, dict[str, list[str]]] = {
    "cisco-legacy": {
        # IOS 12.x / early 15.x: only the Oakley group 2 / 14 SHA-1 exchanges (RFC 4253 §8).
        "kex": ["diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1"],
        "encryption": ["aes128-cbc", "aes256-cbc", "3des-cbc"],
        "mac": ["hmac-sha1"],
        "server_host_key": ["ssh-rsa"],
    },
}


def parse_legacy_algorithms(text: str) -> str:
    """Validate what an admin typed: ``off`` or a known profile name."""
    value = text.strip().lower()
    if value == OFF or value in PROFILES:
        return value
    known = ", ".join(sorted(PROFILES))
    raise ValueError(
        f"legacy_algorithms must be 'off' or a profile name ({known}), not {text.strip()!r}"
    )


def profile_for(resource: Resource) -> str:
    """The resource's chosen profile, or ``off``; a bad stored value counts as ``off``."""
    stored = (resource.settings or {}).get(PLUGIN, {}).get(KEY, OFF)
    try:
        return parse_legacy_algorithms(str(stored))
    except ValueError:
        return OFF


@hookimpl
def pamcore_register_resource_settings(register: Callable[[ResourceSetting], None]) -> None:
    register(
        ResourceSetting(
            plugin=PLUGIN,
            key=KEY,
            help="Allow legacy SSH algorithms for this resource only: 'off' or 'cisco-legacy' "
            "(adds diffie-hellman-group1-sha1, CBC ciphers, hmac-sha1, ssh-rsa).",
            parse=parse_legacy_algorithms,
            default=OFF,
        )
    )


@hookimpl
def pamcore_ssh_algorithms(resource: Resource) -> dict[str, list[str]] | None:
    profile = profile_for(resource)
    if profile == OFF:
        return None
    return {kind: list(names) for kind, names in PROFILES[profile].items()}


@hookimpl
def pamcore_ssh_handshake_hint(resource: Resource, error: str) -> str | None:
    """Say what both sides offered (from a KEXINIT probe) and how to opt the resource in."""
    offer = _probe(resource)
    mismatch = _mismatch(resource, offer) if offer else None
    if mismatch is None and not _looks_like_kex_failure(error):
        return None
    profile = profile_for(resource)
    if mismatch:
        kind, client, server = mismatch
        said = (
            f"ssh: no common algorithm for {kind} with {resource.name}; "
            f"client offered: [{' '.join(client)}], server offered: [{' '.join(server)}]."
        )
    elif profile != OFF:
        return None
    else:
        said = f"{resource.name} may only offer legacy SSH algorithms (such as {GROUP1})."
    if profile != OFF:
        return f"{said} Legacy algorithms ({profile}) are already enabled for it."
    command = " ".join(
        ["pamcore resources set-setting", shlex.quote(resource.name), f"{PLUGIN}.{KEY}", PROFILE]
    )
    return f"{said}\nAn administrator can allow legacy algorithms for this resource only: {command}"


def _looks_like_kex_failure(error: str) -> bool:
    return GROUP1 in error or "no matching" in error.lower()


def _probe(resource: Resource) -> ServerOffer | None:
    """The server's KEXINIT, read in a fresh event loop (in a worker thread when called from
    a running loop, as the SSH actions do); ``None`` when the probe fails."""
    host, port = resource.address, resource.port_for("ssh") or 22
    if not host:
        return None

    def run() -> ServerOffer:
        return asyncio.run(probe_kexinit(host, port, PROBE_TIMEOUT))

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run()
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(run).result()
    except (OSError, TimeoutError, KexinitError) as exc:
        log.info("KEXINIT probe of %s failed: %s", resource.name, exc)
        return None


def _client_offer(resource: Resource) -> dict[str, list[str]]:
    """What asyncssh offers this resource: its defaults plus this plugin's additions."""
    defaults = {
        # asyncssh sends gss-* key exchanges only with a GSS context, which the proxy never has.
        "kex": [n for n in _names(get_default_kex_algs()) if not n.startswith("gss-")],
        "server_host_key": _names(get_default_public_key_algs()),
        "encryption": _names(get_default_encryption_algs()),
        "mac": _names(get_default_mac_algs()),
    }
    for kind, names in (pamcore_ssh_algorithms(resource) or {}).items():
        defaults[kind] += [n for n in names if n not in defaults[kind]]
    return defaults


def _mismatch(resource: Resource, offer: ServerOffer) -> tuple[str, list[str], list[str]] | None:
    """The first kind (in negotiation order) the two sides share nothing in."""
    client = _client_offer(resource)
    server = {
        "kex": offer.kex,
        "server_host_key": offer.host_key,
        "encryption": offer.ciphers,
        "mac": offer.macs,
    }
    for kind, label in KIND_LABELS.items():
        if server[kind] and not set(client[kind]) & set(server[kind]):
            return label, client[kind], server[kind]
    return None


def _names(algs: list[bytes]) -> list[str]:
    return [a.decode("ascii") for a in algs]
