"""The ``[plugins.ldap]`` table of pamcore.toml, checked once into :class:`LdapSettings`.

The service account's password is not a setting: it lives in the vault under the name
``service_password_secret`` gives (``pamcore ldap set-service-password``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ldap.dn

from pamcore.config import Config
from pamcore.errors import ConfigurationError
from pamcore.model import Role

PLUGIN = "ldap"
VAULT_NAME = "ldap-service"
GROUPS_FROM = ("search", "memberOf")


@dataclass(frozen=True)
class LdapSettings:
    url: str
    base_dn: str
    service_dn: str
    ca_file: str = ""
    start_tls: bool = False
    user_filter: str = "(uid={username})"
    service_password_secret: str = VAULT_NAME
    #: Seconds for connecting and for each operation: an outage answers fast.
    timeout: float = 5.0
    groups_from: str = "search"
    group_filter: str = "(&(objectClass=groupOfNames)(member={dn}))"
    #: Parent groups of found groups, followed this deep by the plugin (OpenLDAP nesting).
    nested_depth: int = 0
    #: An entry matching it at the user's DN is disabled (AD: userAccountControl bit 2).
    disabled_filter: str = ""
    display_name_attribute: str = "displayName"
    email_attribute: str = "mail"
    #: Directory group DN (normalised) -> role; the first listed that the user has wins.
    roles: dict[str, Role] = field(default_factory=dict)
    #: Directory group DN (normalised) -> pamcore group names.
    groups: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def managed_groups(self) -> list[str]:
        """Every pamcore group the mapping names: membership of these follows the directory."""
        return list(dict.fromkeys(name for names in self.groups.values() for name in names))

    def role_for(self, group_dns: list[str]) -> Role:
        held = {normalize_dn(dn) for dn in group_dns}
        return next((role for dn, role in self.roles.items() if dn in held), Role.USER)

    def groups_for(self, group_dns: list[str]) -> tuple[str, ...]:
        held = [normalize_dn(dn) for dn in group_dns]
        return tuple(dict.fromkeys(n for dn in held for n in self.groups.get(dn, ())))


def normalize_dn(dn: str) -> str:
    """One spelling per DN (case and spaces around separators), so mappings match."""
    try:
        return ldap.dn.dn2str(ldap.dn.str2dn(dn.strip())).lower()
    except ldap.DECODING_ERROR:
        return dn.strip().lower()


def ldap_settings(config: Config) -> LdapSettings | None:
    """The checked settings, or ``None`` when pamcore.toml has no ``[plugins.ldap]`` url (the
    plugin then answers for nobody); a wrong value is a ConfigurationError naming it."""
    table: dict[str, Any] = config.plugin_settings.get(PLUGIN, {})
    if not table.get("url"):
        return None
    known = set(LdapSettings.__dataclass_fields__)
    unknown = sorted(set(table) - known)
    if unknown:
        raise _bad(unknown[0], f"is not a setting; known: {', '.join(sorted(known))}")
    values = {k: v for k, v in table.items() if k not in ("roles", "groups")}
    for name in ("url", "base_dn", "service_dn"):
        if not isinstance(table.get(name), str) or not table[name].strip():
            raise _bad(name, "is required (a string)")
    url = table["url"].strip()
    start_tls = table.get("start_tls", False)
    if not isinstance(start_tls, bool):
        raise _bad("start_tls", "must be true or false")
    if not (url.startswith("ldaps://") or (url.startswith("ldap://") and start_tls)):
        raise _bad("url", "must be ldaps://HOST, or ldap://HOST with start_tls = true")
    timeout = table.get("timeout", 5.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 60:
        raise _bad("timeout", "must be a number of seconds between 0 and 60")
    depth = table.get("nested_depth", 0)
    if isinstance(depth, bool) or not isinstance(depth, int) or not 0 <= depth <= 10:
        raise _bad("nested_depth", "must be a whole number from 0 to 10")
    if table.get("groups_from", "search") not in GROUPS_FROM:
        raise _bad("groups_from", f"must be one of {', '.join(GROUPS_FROM)}")
    if "{username}" not in table.get("user_filter", "{username}"):
        raise _bad("user_filter", "must contain {username}")
    values.update(url=url, timeout=float(timeout))
    return LdapSettings(
        **values,
        roles=_role_map(table.get("roles", {})),
        groups=_group_map(table.get("groups", {})),
    )


def _role_map(table: Any) -> dict[str, Role]:
    if not isinstance(table, dict):
        raise _bad("roles", 'must be a table of "group DN" = "role"')
    roles = {}
    for dn, role in table.items():
        try:
            roles[normalize_dn(dn)] = Role(role)
        except ValueError:
            raise _bad(
                "roles", f"{dn!r}: {role!r} is not one of {', '.join(r.value for r in Role)}"
            ) from None
    return roles


def _group_map(table: Any) -> dict[str, tuple[str, ...]]:
    if not isinstance(table, dict):
        raise _bad("groups", 'must be a table of "group DN" = "pamcore group" (or a list)')
    groups = {}
    for dn, names in table.items():
        names = [names] if isinstance(names, str) else names
        if not isinstance(names, list) or not all(isinstance(n, str) and n for n in names):
            raise _bad("groups", f"{dn!r}: give a pamcore group name or a list of them")
        groups[normalize_dn(dn)] = tuple(names)
    return groups


def _bad(name: str, why: str) -> ConfigurationError:
    return ConfigurationError(f"pamcore.toml [plugins.{PLUGIN}] {name}: {why}")
