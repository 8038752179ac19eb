"""Sign-in latency through the directory (pamcore_ldap against a real slapd on loopback,
LDAPS) next to the local argon2id password, p50 and p95 over N sign-ins each.

Each sign-in is what every edge runs: one unit of work around
``pamcore.services.directory.authenticate``. A directory sign-in opens a TLS connection,
binds as the service account, searches the user and their groups (one level of nesting
walked), binds as the user and refreshes the pamcore user; a local one verifies argon2id.

    .venv/bin/python bench/ldap_signin.py            # SQLite, 200 sign-ins each
    .venv/bin/python bench/ldap_signin.py -n 500 --pg-url postgresql+psycopg://...

Needs Debian's slapd. Figures, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pamcore_ldap.plugin

from pamcore.audit import AuditKeyring
from pamcore.config import load_config
from pamcore.core import Pamcore
from pamcore.model import Base, Role
from pamcore.plugins import build_plugin_host
from pamcore.services.directory import authenticate
from pamcore.testing import builders, create_pg_database, drop_pg_database
from pamcore.vault import MasterKey, write_key_file, write_keyring

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "pamcore_ldap" / "tests"))
from slapd_peer import (  # the test peer lives with the plugin's tests
    BREAK_GLASS,
    PASSWORDS,
    SERVICE_PASSWORD,
    openldap_settings,
    start_slapd,
)


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))]


def make_core(url: str, workdir: Path) -> Pamcore:
    key = workdir / "master.key"
    write_key_file(key, MasterKey.generate())
    config = load_config(workdir, database_url=url, master_key_path=key)
    write_keyring(config.audit_key_path, AuditKeyring.of(MasterKey.generate()))
    plugins = build_plugin_host(strict=True, entry_points=False)
    plugins.register(pamcore_ldap.plugin, "ldap")
    core = Pamcore(config, plugins=plugins)
    Base.metadata.drop_all(core.engine)
    Base.metadata.create_all(core.engine)
    return core


def timed_sign_ins(core: Pamcore, username: str, password: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        started = time.perf_counter()
        with core.unit() as db:
            authenticate(core, db, username, password)
        times.append((time.perf_counter() - started) * 1000)
    return times


def run(url: str, n: int, workdir: Path) -> None:
    slapd_dir = workdir / "slapd"
    slapd_dir.mkdir()
    server = start_slapd(slapd_dir)
    core = make_core(url, workdir)
    try:
        core.config.plugin_settings["ldap"] = openldap_settings(server)
        with core.unit() as db:
            core.vault.store(db, SERVICE_PASSWORD, name="ldap-service")
            builders.make_user(db, "root", Role.ADMIN, password=BREAK_GLASS)
        timed_sign_ins(core, "bob", PASSWORDS["bob"], 1)  # created at the first sign-in
        directory = timed_sign_ins(core, "bob", PASSWORDS["bob"], n)
        local = timed_sign_ins(core, "root", BREAK_GLASS, n)
    finally:
        core.dispose()
        server.stop()
    print(f"{core.engine.dialect.name}: {n} sign-ins each, milliseconds")
    print(f"  {'':18}{'p50':>8}{'p95':>8}")
    for label, times in (("directory (LDAPS)", directory), ("local argon2id", local)):
        print(f"  {label:18}{pct(times, 50):8.1f}{pct(times, 95):8.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=200, help="sign-ins of each kind")
    parser.add_argument(
        "--pg-url", help="also run on PostgreSQL: a database made (and dropped) on this server"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp) / "sqlite"
        work.mkdir()
        run(f"sqlite:///{work}/bench.db", args.n, work)
    if args.pg_url:
        url = create_pg_database(args.pg_url, template=None)
        try:
            with tempfile.TemporaryDirectory() as tmp:
                run(url, args.n, Path(tmp))
        finally:
            drop_pg_database(args.pg_url, url)


if __name__ == "__main__":
    main()
