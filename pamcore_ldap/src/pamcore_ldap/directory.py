"""Talking to the directory: the service account finds a person, their groups and whether
they are disabled; a bind as the person checks their password.

Every connection verifies the server certificate (LDAPS or StartTLS against ``ca_file``) and
carries timeouts, so an outage becomes :class:`DirectoryUnavailable` within seconds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import ldap
import ldap.filter

from pamcore.errors import PamError
from pamcore_ldap.settings import LdapSettings

log = logging.getLogger(__name__)


class DirectoryUnavailable(PamError):
    """The directory did not answer, refused the service account, or failed its TLS check."""


@dataclass(frozen=True)
class Person:
    """A directory entry as pamcore needs it; ``groups`` are DNs, nested ones included."""

    dn: str
    display_name: str
    email: str
    groups: list[str]
    disabled: bool


class Directory:
    """One connection bound as the service account (see :func:`connect`)."""

    def __init__(self, conn: ldap.ldapobject.LDAPObject, settings: LdapSettings) -> None:
        self._conn = conn
        self._settings = settings

    def find(self, username: str) -> Person | None:
        """The one entry the user filter finds for ``username`` (escaped per RFC 4515 §3),
        or ``None`` when there is none or more than one."""
        s = self._settings
        wanted = s.user_filter.replace("{username}", ldap.filter.escape_filter_chars(username))
        attrs = [s.display_name_attribute, s.email_attribute, "memberOf"]
        found = [e for e in self._search(s.base_dn, ldap.SCOPE_SUBTREE, wanted, attrs) if e[0]]
        if len(found) != 1:
            return None
        dn, entry = found[0]
        groups = (
            _texts(entry, "memberOf")
            if s.groups_from == "memberOf"
            else self._member_of(dn, s.nested_depth)
        )
        return Person(
            dn=dn,
            display_name=next(iter(_texts(entry, s.display_name_attribute)), ""),
            email=next(iter(_texts(entry, s.email_attribute)), ""),
            groups=groups,
            disabled=bool(s.disabled_filter)
            and bool(self._search(dn, ldap.SCOPE_BASE, s.disabled_filter, ["1.1"])),
        )

    def check_password(self, dn: str, password: str) -> bool:
        """Bind as ``dn``. An empty password is refused here: LDAP takes it as an
        unauthenticated bind, which succeeds without checking anything (RFC 4513 §5.1.2)."""
        if not password:
            return False
        try:
            self._conn.simple_bind_s(dn, password)
        except ldap.INVALID_CREDENTIALS:
            return False
        except ldap.LDAPError as exc:
            raise _unavailable(self._settings, exc) from None
        return True

    def _member_of(self, dn: str, depth: int) -> list[str]:
        """Groups whose filter names ``dn``, then their parents ``depth`` levels up."""
        found: list[str] = []
        frontier = [dn]
        for _ in range(depth + 1):
            parents = []
            for member in frontier:
                wanted = self._settings.group_filter.replace(
                    "{dn}", ldap.filter.escape_filter_chars(member)
                )
                for group_dn, _attrs in self._search(
                    self._settings.base_dn, ldap.SCOPE_SUBTREE, wanted, ["1.1"]
                ):
                    if group_dn and group_dn not in found:
                        found.append(group_dn)
                        parents.append(group_dn)
            frontier = parents
            if not frontier:
                break
        return found

    def _search(
        self, base: str, scope: int, filterstr: str, attrs: list[str]
    ) -> list[tuple[str | None, dict[str, list[bytes]]]]:
        try:
            return self._conn.search_s(base, scope, filterstr, attrs)
        except ldap.NO_SUCH_OBJECT:
            return []
        except ldap.FILTER_ERROR:
            raise DirectoryUnavailable(
                f"the LDAP filter {filterstr!r} is not valid; check pamcore.toml [plugins.ldap]"
            ) from None
        except ldap.LDAPError as exc:
            raise _unavailable(self._settings, exc) from None


@contextmanager
def connect(settings: LdapSettings, service_password: str) -> Iterator[Directory]:
    """A connection bound as the service account, closed on leaving."""
    try:
        conn = ldap.initialize(settings.url)
        conn.set_option(ldap.OPT_PROTOCOL_VERSION, 3)
        conn.set_option(ldap.OPT_REFERRALS, 0)
        conn.set_option(ldap.OPT_NETWORK_TIMEOUT, settings.timeout)
        conn.set_option(ldap.OPT_TIMEOUT, settings.timeout)
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        if settings.ca_file:
            conn.set_option(ldap.OPT_X_TLS_CACERTFILE, settings.ca_file)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)  # applies the TLS options above
    except (ldap.LDAPError, ValueError) as exc:
        raise _unavailable(settings, exc) from None
    try:
        _first_bind(conn, settings, service_password)
    except ldap.INVALID_CREDENTIALS:
        conn.unbind_s()
        raise DirectoryUnavailable(
            f"the directory refused the service account {settings.service_dn}; "
            "check its password ('pamcore ldap set-service-password')"
        ) from None
    except ldap.TIMEOUT as exc:
        raise _unavailable(settings, exc) from None  # the bind thread still holds it
    except ldap.LDAPError as exc:
        conn.unbind_s()
        raise _unavailable(settings, exc) from None
    try:
        yield Directory(conn, settings)
    finally:
        conn.unbind_s()


def _first_bind(conn: ldap.ldapobject.LDAPObject, settings: LdapSettings, password: str) -> None:
    """StartTLS if asked, and the service bind, which opens the connection. Run in a thread
    of its own because libldap (as Debian builds it) puts no timeout on the TLS handshake of
    ``ldaps://``: a server that accepts and never answers would hold the sign-in forever. On
    timeout the thread is left to end when the server closes the connection."""
    outcome: list[BaseException | None] = []

    def bind() -> None:
        try:
            if settings.start_tls:
                conn.start_tls_s()
            conn.simple_bind_s(settings.service_dn, password)
        except BaseException as exc:  # handed to the waiting thread below
            outcome.append(exc)
        else:
            outcome.append(None)

    worker = threading.Thread(target=bind, name="ldap-bind", daemon=True)
    worker.start()
    worker.join(2 * settings.timeout)
    if not outcome:
        raise ldap.TIMEOUT({"desc": "Timed out", "info": "no answer to the TLS handshake"})
    if outcome[0] is not None:
        raise outcome[0]


def _unavailable(settings: LdapSettings, exc: Exception) -> DirectoryUnavailable:
    """A sentence for the user; the library's details go to the log (they name no secret:
    python-ldap's errors carry the server's diagnostic, never the bind password)."""
    detail = exc.args[0] if exc.args and isinstance(exc.args[0], dict) else {}
    why = detail.get("info") or detail.get("desc") or str(exc)
    log.warning("directory %s: %s", settings.url, why)
    return DirectoryUnavailable(
        f"the directory ({settings.url}) is not answering: {detail.get('desc') or 'error'}; "
        "try again later, or ask an administrator"
    )


def _texts(entry: dict[str, list[bytes]], name: str) -> list[str]:
    values = next((v for k, v in entry.items() if k.lower() == name.lower()), [])
    return [v.decode("utf-8", "replace") for v in values]
