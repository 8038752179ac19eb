"""A real OpenLDAP ``slapd`` on loopback, with TLS from a test CA, for the plugin's tests.

Its own configuration folder (``slapd -f``), data loaded with ``slapadd`` before it starts,
LDAPS and StartTLS on free ports. Active Directory is stood in for by a small schema that
gives slapd the three AD attributes the plugin reads (``sAMAccountName``,
``userAccountControl``, ``memberOf``, the last one kept by hand as AD keeps it): Samba's AD
domain controller is not provisioned here. slapd implements the bitwise matching rule AD
filters use (1.2.840.113556.1.4.803), not AD's in-chain rule (1.2.840.113556.1.4.1941), so
nested groups are tested through the plugin's own walk up ``groupOfNames``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ldap
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

BASE = "dc=example,dc=org"
ADMIN_DN = f"cn=admin,{BASE}"
ADMIN_PASSWORD = "admin-Pw-4-tests"
SERVICE_DN = f"cn=pamcore,ou=services,{BASE}"
SERVICE_PASSWORD = "svc-Secret-9f3k2"
PASSWORDS = {
    "alice": "alice-Pw-1",
    "bob": "bob-Pw-2",
    "carol": "carol-Pw-3",
    "dave": "dave-Pw-4",
}
ADMINS = f"cn=pam-admins,ou=groups,{BASE}"
DBA = f"cn=dba,ou=groups,{BASE}"
OPS = f"cn=ops,ou=groups,{BASE}"  # has DBA as a member: DBA's members are in ops too

SCHEMA = """\
attributetype ( 1.3.6.1.3.7427.1.1 NAME 'sAMAccountName'
  EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch
  SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 SINGLE-VALUE )
attributetype ( 1.3.6.1.3.7427.1.2 NAME 'userAccountControl'
  EQUALITY integerMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.27 SINGLE-VALUE )
attributetype ( 1.3.6.1.3.7427.1.3 NAME 'memberOf'
  EQUALITY distinguishedNameMatch SYNTAX 1.3.6.1.4.1.1466.115.121.1.12 )
objectclass ( 1.3.6.1.3.7427.2.1 NAME 'adAccount' AUXILIARY
  MAY ( sAMAccountName $ userAccountControl $ memberOf ) )
"""

#: AD's userAccountControl: 512 a normal account, 514 the same with bit 2 (disabled).
NORMAL, DISABLED = 512, 514


def _person(uid: str, name: str, groups: list[str], control: int = NORMAL) -> str:
    member_of = "".join(f"memberOf: {g}\n" for g in groups)
    return (
        f"dn: uid={uid},ou=people,{BASE}\n"
        "objectClass: inetOrgPerson\nobjectClass: adAccount\n"
        f"uid: {uid}\ncn: {name}\nsn: {name.split()[-1]}\ndisplayName: {name}\n"
        f"mail: {uid}@example.org\nsAMAccountName: {uid}\nuserAccountControl: {control}\n"
        f"{member_of}userPassword: {PASSWORDS[uid]}\n"
    )


def _group(dn: str, members: list[str]) -> str:
    cn = dn.split(",")[0].split("=")[1]
    lines = "".join(f"member: {m}\n" for m in members)
    return f"dn: {dn}\nobjectClass: groupOfNames\ncn: {cn}\n{lines}"


def people_dn(uid: str) -> str:
    return f"uid={uid},ou=people,{BASE}"


DATA = "\n".join(
    [
        f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: example\no: Example\n",
        *(
            f"dn: ou={ou},{BASE}\nobjectClass: organizationalUnit\nou: {ou}\n"
            for ou in ("people", "groups", "services")
        ),
        f"dn: {SERVICE_DN}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
        f"cn: pamcore\nuserPassword: {SERVICE_PASSWORD}\n",
        _person("alice", "Alice Admin", [ADMINS]),
        _person("bob", "Bob Dba", [DBA, OPS]),
        _person("carol", "Carol Gone", [DBA, OPS], control=DISABLED),
        _person("dave", "Dave Plain", []),
        _group(ADMINS, [people_dn("alice")]),
        _group(DBA, [people_dn("bob"), people_dn("carol")]),
        _group(OPS, [DBA]),
    ]
)


def slapd_missing() -> str | None:
    for tool in ("slapd", "slapadd"):
        if shutil.which(tool) is None and not Path(f"/usr/sbin/{tool}").exists():
            return f"{tool} is not installed (Debian packages slapd, ldap-utils)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_tls(folder: Path) -> Path:
    """A test CA and a server certificate for 127.0.0.1 it signed; returns the CA file."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pamcore-ldap test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    (folder / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    (folder / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (folder / "server.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return folder / "ca.pem"


@dataclass
class Slapd:
    """A running slapd; ``ldaps_url`` and ``ldap_url`` (StartTLS) reach it."""

    folder: Path
    ca_file: Path
    ldaps_port: int
    ldap_port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def ldaps_url(self) -> str:
        return f"ldaps://127.0.0.1:{self.ldaps_port}"

    @property
    def ldap_url(self) -> str:
        return f"ldap://127.0.0.1:{self.ldap_port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                _tool("slapd"),
                "-f",
                str(self.folder / "slapd.conf"),
                "-h",
                f"{self.ldaps_url}/ {self.ldap_url}/",
                "-d",
                "0",
            ],
            stdout=subprocess.DEVNULL,
            stderr=(self.folder / "slapd.log").open("ab"),
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.ldaps_port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    log = (self.folder / "slapd.log").read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"slapd did not start:\n{log}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.process = None

    @contextmanager
    def admin(self) -> Iterator[ldap.ldapobject.LDAPObject]:
        """A connection bound as the directory's root, to change the data under test."""
        conn = ldap.initialize(self.ldaps_url)
        conn.set_option(ldap.OPT_X_TLS_CACERTFILE, str(self.ca_file))
        conn.set_option(ldap.OPT_X_TLS_REQUIRE_CERT, ldap.OPT_X_TLS_DEMAND)
        conn.set_option(ldap.OPT_X_TLS_NEWCTX, 0)
        conn.simple_bind_s(ADMIN_DN, ADMIN_PASSWORD)
        try:
            yield conn
        finally:
            conn.unbind_s()

    def set_members(self, group_dn: str, members: list[str]) -> None:
        """Replace a group's members, and the memberOf values AD would keep in step."""
        with self.admin() as conn:
            old = conn.search_s(group_dn, ldap.SCOPE_BASE, attrlist=["member"])[0][1]
            before = [m.decode() for m in old.get("member", [])]
            conn.modify_s(group_dn, [(ldap.MOD_REPLACE, "member", [m.encode() for m in members])])
            for dn in set(before) - set(members):
                if dn.startswith("uid="):
                    conn.modify_s(dn, [(ldap.MOD_DELETE, "memberOf", [group_dn.encode()])])
            for dn in set(members) - set(before):
                if dn.startswith("uid="):
                    conn.modify_s(dn, [(ldap.MOD_ADD, "memberOf", [group_dn.encode()])])

    def set_control(self, uid: str, control: int) -> None:
        with self.admin() as conn:
            conn.modify_s(
                people_dn(uid),
                [(ldap.MOD_REPLACE, "userAccountControl", [str(control).encode()])],
            )

    def delete(self, uid: str) -> None:
        with self.admin() as conn:
            conn.delete_s(people_dn(uid))


BREAK_GLASS = "Break-Glass-Pw-77"


def openldap_settings(server: Slapd, **changes: Any) -> dict[str, Any]:
    """The plugin's settings for ``server``, the OpenLDAP way, with ``changes``."""
    return {
        "url": server.ldaps_url,
        "ca_file": str(server.ca_file),
        "base_dn": BASE,
        "service_dn": SERVICE_DN,
        "user_filter": "(&(objectClass=inetOrgPerson)(uid={username}))",
        "timeout": 2,
        "nested_depth": 1,
        "disabled_filter": "(userAccountControl:1.2.840.113556.1.4.803:=2)",
        "roles": {ADMINS: "admin", OPS: "approver"},
        "groups": {DBA: "DBA", OPS: ["Operations"]},
        **changes,
    }


def _tool(name: str) -> str:
    return shutil.which(name) or f"/usr/sbin/{name}"


def start_slapd(folder: Path) -> Slapd:
    """Configure, load and start a slapd in ``folder``."""
    ca_file = make_tls(folder)
    (folder / "db").mkdir()
    (folder / "ad-attributes.schema").write_text(SCHEMA)
    (folder / "slapd.conf").write_text(
        "include /etc/ldap/schema/core.schema\n"
        "include /etc/ldap/schema/cosine.schema\n"
        "include /etc/ldap/schema/inetorgperson.schema\n"
        f"include {folder}/ad-attributes.schema\n"
        f"pidfile {folder}/slapd.pid\n"
        "modulepath /usr/lib/ldap\nmoduleload back_mdb\n"
        f"TLSCACertificateFile {ca_file}\n"
        f"TLSCertificateFile {folder}/server.pem\n"
        f"TLSCertificateKeyFile {folder}/server.key\n"
        "database mdb\nmaxsize 16777216\n"
        f'suffix "{BASE}"\nrootdn "{ADMIN_DN}"\nrootpw {ADMIN_PASSWORD}\n'
        f"directory {folder}/db\n"
        "access to attrs=userPassword by self write by anonymous auth by * none\n"
        "access to * by users read by * none\n"
    )
    (folder / "data.ldif").write_text(DATA)
    subprocess.run(
        [_tool("slapadd"), "-f", str(folder / "slapd.conf"), "-l", str(folder / "data.ldif")],
        check=True,
        capture_output=True,
    )
    server = Slapd(folder, ca_file, free_port(), free_port())
    server.start()
    return server
