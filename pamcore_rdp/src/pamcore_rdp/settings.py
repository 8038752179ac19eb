"""Per-resource RDP settings (``pamcore resources set-setting NAME rdp.KEY VALUE``): how the
relay secures and authenticates the target leg.

* ``rdp.security``: ``auto`` (take what the target selects), ``nla`` (insist on CredSSP)
  or ``tls`` (TLS with the credential in the Client Info PDU, for targets without NLA).
* ``rdp.nla_mechanism``: the mechanism inside CredSSP; ``negotiate`` (SPNEGO) for Windows,
  which rejects bare NTLM, or ``ntlm`` for FreeRDP-based servers, which reject SPNEGO
  (notes §2).
* ``rdp.domain``: the domain of the vaulted account, when it is not in the account name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pamcore.registry import ResourceSetting

if TYPE_CHECKING:
    from pamcore.model import Resource

PLUGIN = "rdp"
SECURITY_MODES = ("auto", "nla", "tls")
NLA_MECHANISMS = ("negotiate", "ntlm")
#: TS_INFO_PACKET caps Domain at 512 bytes of UTF-16 with its NUL (MS-RDPBCGR 2.2.1.11.1.1).
MAX_DOMAIN = 255


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
)


@dataclass(frozen=True)
class TargetSettings:
    security: str
    nla_mechanism: str
    domain: str


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
