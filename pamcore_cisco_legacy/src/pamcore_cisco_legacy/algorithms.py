"""Which legacy SSH algorithms a resource gets: the named profiles, explicit per-resource
lists, and the proxy-wide opt-in list in ``[plugins.cisco_legacy]``.

Every name is checked against what the installed asyncssh supports, so a typo is a clear
error when an administrator sets it, never a failed handshake later. The lists are
appended after asyncssh's defaults by the SSH plugin (``+alg``), so modern algorithms stay
preferred and a modern server never negotiates a legacy one.
"""

from __future__ import annotations

import fnmatch
import re
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from asyncssh.encryption import get_default_encryption_algs, get_encryption_algs
from asyncssh.kex import get_default_kex_algs, get_kex_algs
from asyncssh.mac import get_default_mac_algs, get_mac_algs
from asyncssh.public_key import get_default_public_key_algs, get_public_key_algs
from cryptography.utils import CryptographyDeprecationWarning

from pamcore.errors import ConfigurationError

if TYPE_CHECKING:
    from pamcore.config import Config
    from pamcore.model import Resource

PLUGIN = "cisco_legacy"
#: The resource setting naming a profile (or ``off``).
PROFILE_KEY = "legacy_algorithms"
OFF = "off"
DEFAULT_PROFILE = "cisco-legacy"

#: Hook kinds in negotiation order (RFC 4253 §7.1) -> (explicit-list setting, what a user
#: reads, asyncssh's supported names, asyncssh's defaults).
KINDS: dict[str, tuple[str, str, Callable[[], list[bytes]], Callable[[], list[bytes]]]] = {
    "kex": ("kex", "key exchange", get_kex_algs, get_default_kex_algs),
    "server_host_key": (
        "host_keys",
        "host key",
        get_public_key_algs,
        get_default_public_key_algs,
    ),
    "encryption": ("ciphers", "encryption", get_encryption_algs, get_default_encryption_algs),
    "mac": ("macs", "MAC", get_mac_algs, get_default_mac_algs),
}

#: Profiles an operator can name. Each holds only what asyncssh leaves off by default
#: (docs/design/ssh.md §1): group14-sha1, hmac-sha1 and ssh-rsa are already on.
PROFILES: dict[str, dict[str, list[str]]] = {
    # IOS 12.x / early 15.x: Oakley group 2 (RFC 4253 §8) and SHA-1 group exchange
    # (RFC 4419), CBC ciphers (RFC 4253 §6.3), truncated SHA-1 and MD5 MACs, DSA host keys.
    DEFAULT_PROFILE: {
        "kex": ["diffie-hellman-group1-sha1", "diffie-hellman-group-exchange-sha1"],
        "encryption": ["aes128-cbc", "aes192-cbc", "aes256-cbc", "3des-cbc"],
        "mac": ["hmac-sha1-96", "hmac-md5"],
        "server_host_key": ["ssh-dss"],
    },
}


def names(algs: list[bytes]) -> list[str]:
    return [a.decode("ascii") for a in algs]


def supported(kind: str) -> list[str]:
    """What the installed asyncssh can negotiate for ``kind``; GSS key exchanges need a
    Kerberos context the proxy never has."""
    return [n for n in names(KINDS[kind][2]()) if not n.startswith("gss-")]


def defaults(kind: str) -> list[str]:
    """What asyncssh offers for ``kind`` without any opt-in."""
    return [n for n in names(KINDS[kind][3]()) if not n.startswith("gss-")]


def parse_profile(text: str) -> str:
    """Validate what an admin typed: ``off`` or a known profile name."""
    value = text.strip().lower()
    if value == OFF or value in PROFILES:
        return value
    known = ", ".join(sorted(PROFILES))
    raise ValueError(
        f"legacy_algorithms must be 'off' or a profile name ({known}), not {text.strip()!r}"
    )


def list_parser(kind: str) -> Callable[[str], str]:
    """A parser for an explicit list of ``kind`` names (comma or space separated): each
    must be supported by the installed asyncssh; stored comma-separated, empty for none."""
    label = KINDS[kind][1]

    def parse(text: str) -> str:
        wanted = [n for n in re.split(r"[,\s]+", text.strip()) if n]
        known = supported(kind)
        unknown = [n for n in wanted if n not in known]
        if unknown:
            article = "an" if label[0] in "aeiou" else "a"
            raise ValueError(
                f"{', '.join(unknown)} {'is' if len(unknown) == 1 else 'are'} not "
                f"{article} {label} algorithm this asyncssh supports; supported: {', '.join(known)}"
            )
        return ",".join(dict.fromkeys(wanted))

    return parse


def _stored(resource: Resource) -> dict[str, Any]:
    return dict((resource.settings or {}).get(PLUGIN, {}))


def proxy_wide_profile(resource: Resource, config: Config) -> str | None:
    """The profile ``[plugins.cisco_legacy]`` gives ``resource``: its name or address
    matches a ``resources`` pattern (shell-style); raises ConfigurationError when the table
    is malformed."""
    table = config.plugin_settings.get(PLUGIN, {})
    patterns = table.get("resources", [])
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        raise ConfigurationError(
            f"[plugins.{PLUGIN}] resources must be a list of resource names or address "
            f'patterns, e.g. resources = ["sw-*", "10.20.*"]'
        )
    profile = str(table.get("profile", DEFAULT_PROFILE))
    if profile not in PROFILES:
        raise ConfigurationError(
            f"[plugins.{PLUGIN}] profile {profile!r} is unknown; known: {', '.join(PROFILES)}"
        )
    for pattern in patterns:
        if fnmatch.fnmatchcase(resource.name, pattern) or (
            resource.address and fnmatch.fnmatchcase(resource.address, pattern)
        ):
            return profile
    return None


def profile_for(resource: Resource, config: Config) -> str:
    """The resource's profile, or ``off``. Its own setting wins, so ``off`` set on a
    resource keeps it out of the proxy-wide list; a bad stored value counts as ``off``."""
    stored = _stored(resource).get(PROFILE_KEY)
    if stored is not None:
        try:
            return parse_profile(str(stored))
        except ValueError:
            return OFF
    return proxy_wide_profile(resource, config) or OFF


def legacy_algorithms(resource: Resource, config: Config) -> dict[str, list[str]]:
    """What ``resource`` gets beyond asyncssh's defaults: its profile's lists, then its
    explicit lists (unsupported stored names are dropped)."""
    profile = profile_for(resource, config)
    chosen = {kind: list(found) for kind, found in PROFILES.get(profile, {}).items()}
    stored = _stored(resource)
    for kind, (setting, *_rest) in KINDS.items():
        extra = [n for n in str(stored.get(setting, "")).split(",") if n in supported(kind)]
        bucket = chosen.setdefault(kind, [])
        bucket.extend(n for n in extra if n not in bucket)
    return {kind: found for kind, found in chosen.items() if found}


def quiet_ffdh_warning() -> None:
    """cryptography ≥ 50 warns on every finite-field Diffie-Hellman exchange (group1, group14,
    group exchange), which legacy devices need: silence it for asyncssh's DH module only."""
    warnings.filterwarnings(
        "ignore", category=CryptographyDeprecationWarning, module=r"asyncssh\.crypto\.dh"
    )
