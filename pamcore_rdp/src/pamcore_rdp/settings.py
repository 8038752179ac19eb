"""Per-resource RDP settings (``pamcore resources set-setting NAME rdp.KEY VALUE``): how the
relay secures and authenticates the target leg.

* ``rdp.security``: ``auto`` (take what the target selects), ``nla`` (insist on CredSSP)
  or ``tls`` (TLS with the credential in the Client Info PDU, for targets without NLA).
* ``rdp.nla_mechanism``: the mechanism inside CredSSP; ``negotiate`` (SPNEGO) for Windows,
  which rejects bare NTLM, or ``ntlm`` for FreeRDP-based servers, which reject SPNEGO
  (docs/design/rdp.md §2).
* ``rdp.domain``: the domain of the vaulted account, when it is not in the account name.
* ``rdp.certificate_sha256``: the pinned SHA-256 of the target's TLS certificate, set by an
  administrator or on first use (the resource's trust-on-first-use, as for SSH host keys);
  cleared, the next connection pins again (:mod:`pamcore_rdp.proxy.trust`).
* ``rdp.ca_bundle``: a PEM file of CAs the target's certificate must chain to, for its
  address; the alternative to pinning for targets with CA-issued certificates.

One proxy-wide setting lives in ``pamcore.toml``: ``[plugins.rdp] waiting_room_minutes``,
how long a connection waits on its card for the session to become Available
(:func:`waiting_room`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from pamcore.errors import ConfigurationError
from pamcore.registry import ResourceSetting

if TYPE_CHECKING:
    from pamcore.config import Config
    from pamcore.model import Resource

PLUGIN = "rdp"
SECURITY_MODES = ("auto", "nla", "tls")
NLA_MECHANISMS = ("negotiate", "ntlm")
#: TS_INFO_PACKET caps Domain at 512 bytes of UTF-16 with its NUL (MS-RDPBCGR 2.2.1.11.1.1).
MAX_DOMAIN = 255
#: The waiting room's bound when ``pamcore.toml`` does not set one, and its largest value.
DEFAULT_WAITING_ROOM_MINUTES = 10
MAX_WAITING_ROOM_MINUTES = 24 * 60
#: A SHA-256 as FreeRDP, ``openssl x509 -fingerprint -sha256`` or the dashboard print it.
_SHA256 = re.compile(r"(?:sha256:)?((?:[0-9a-f]{2}:?){31}[0-9a-f]{2})")


def _choice(key: str, allowed: tuple[str, ...]) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"{key} must be one of {', '.join(allowed)}, not {text.strip()!r}")
        return value

    return parse


def parse_domain(text: str) -> str:
    """A NetBIOS or DNS domain name; empty means none."""
    value = text.strip()
    if len(value) > MAX_DOMAIN:
        raise ValueError(f"domain must be at most {MAX_DOMAIN} characters")
    if any(c in value for c in "\\/@") or any(not c.isprintable() for c in value):
        raise ValueError(
            "domain must be a plain domain name such as CORP or corp.example.com "
            "(no '\\', '/', '@' or control characters)"
        )
    return value


def parse_sha256(text: str) -> str:
    """A certificate's SHA-256 in hex, with or without colons or a ``sha256:`` prefix, as
    ``AB:CD:...``; empty means not pinned."""
    value = text.strip().lower().replace(" ", "")
    if not value:
        return ""
    found = _SHA256.fullmatch(value)
    if found is None:
        raise ValueError(
            "certificate_sha256 must be the certificate's SHA-256 fingerprint, 64 hex digits "
            "with or without colons (openssl x509 -noout -fingerprint -sha256 -in CERT)"
        )
    digits = found.group(1).replace(":", "")
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2)).upper()


def parse_ca_bundle(text: str) -> str:
    """An absolute path; whether it holds CA certificates is checked at each connection, so
    a bundle that went missing refuses the connection instead of dropping the check."""
    value = text.strip()
    if value and not PurePosixPath(value).is_absolute():
        raise ValueError(f"ca_bundle must be an absolute path to a PEM file, not {value!r}")
    if any(not c.isprintable() for c in value):
        raise ValueError("ca_bundle must not contain control characters")
    return value


SETTINGS = (
    ResourceSetting(
        plugin=PLUGIN,
        key="security",
        help="Target leg security: 'auto' (what the target selects), 'nla' or 'tls'.",
        parse=_choice("security", SECURITY_MODES),
        default="auto",
    ),
    ResourceSetting(
        plugin=PLUGIN,
        key="nla_mechanism",
        help="Mechanism inside CredSSP: 'negotiate' (Windows) or 'ntlm' (FreeRDP-based servers).",
        parse=_choice("nla_mechanism", NLA_MECHANISMS),
        default="negotiate",
    ),
    ResourceSetting(
        plugin=PLUGIN,
        key="domain",
        help="Domain of the vaulted account (e.g. CORP), unless the account is DOMAIN\\user.",
        parse=parse_domain,
        default="",
    ),
    ResourceSetting(
        plugin=PLUGIN,
        key="certificate_sha256",
        help=(
            "Pinned SHA-256 of the target's TLS certificate; set on first use when the "
            "resource trusts on first use. Clear it to re-pin after a legitimate change."
        ),
        parse=parse_sha256,
        default="",
    ),
    ResourceSetting(
        plugin=PLUGIN,
        key="ca_bundle",
        help=(
            "PEM file of CAs that issue the target's certificate (checked with its address), "
            "instead of pinning."
        ),
        parse=parse_ca_bundle,
        default="",
    ),
)


@dataclass(frozen=True)
class TargetSettings:
    security: str
    nla_mechanism: str
    domain: str
    certificate_sha256: str
    ca_bundle: str


def target_settings(resource: Resource) -> TargetSettings:
    """The resource's RDP settings with defaults; a stored value that no longer parses
    counts as the default (it was validated when set)."""
    stored = (resource.settings or {}).get(PLUGIN, {})
    values: dict[str, str] = {}
    for setting in SETTINGS:
        try:
            values[setting.key] = setting.parse(str(stored.get(setting.key, setting.default)))
        except ValueError:
            values[setting.key] = setting.default
    return TargetSettings(**values)


def waiting_room(config: Config) -> dt.timedelta:
    """``[plugins.rdp] waiting_room_minutes``: how long a connection whose session waits
    (for approval, its schedule, its start) stays on the card before it closes."""
    value = config.plugin_settings.get(PLUGIN, {}).get(
        "waiting_room_minutes", DEFAULT_WAITING_ROOM_MINUTES
    )
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= MAX_WAITING_ROOM_MINUTES
    ):
        raise ConfigurationError(
            f"[plugins.{PLUGIN}] waiting_room_minutes must be a number of minutes above 0 "
            f"and at most {MAX_WAITING_ROOM_MINUTES}, not {value!r}"
        )
    return dt.timedelta(minutes=value)
