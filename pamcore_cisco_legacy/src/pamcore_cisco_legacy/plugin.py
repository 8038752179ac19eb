"""Per-resource opt-in to legacy SSH algorithms (``diffie-hellman-group1-sha1`` and friends).

Legacy algorithms are data enabled per outgoing connection, never globally (asyncssh's
habit): a resource opts in with ``cisco_legacy.legacy_algorithms = cisco-legacy``; the SSH
plugin asks :func:`pamcore_ssh_algorithms` before it connects to that resource only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from pamcore import hookimpl
from pamcore.registry import ResourceSetting

if TYPE_CHECKING:
    from pamcore.model import Resource

PLUGIN = "cisco_legacy"
KEY = "legacy_algorithms"
OFF = "off"

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
    """Turn "no matching key exchange" with an old device into a next step for the user."""
    if "group1-sha1" not in error and "no matching" not in error.lower():
        return None
    if profile_for(resource) != OFF:
        return None
    return (
        f"{resource.name} only offers legacy SSH algorithms (such as "
        f"diffie-hellman-group1-sha1). An administrator can allow them for this resource "
        f"only: set {PLUGIN}.{KEY} = cisco-legacy on {resource.name}."
    )
