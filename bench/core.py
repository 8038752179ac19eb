"""Core throughput and latency on SQLite and PostgreSQL, side by side.

For N sessions (default 10,000): sessions created and approved per second through the
services (one unit of work per request, as the web and CLI do), next to a baseline of the
same rows inserted by the bare ORM; audit events per second from concurrent writers;
list-active latency (p50/p95) for an admin and for a user; scheduler activation lag
(p50/p99) with starts spread over a window while a worker ticks on a real clock. Beside
each rate, the SQL statements it took per item: a count that the machine's load does not
blur, to see what a change saved.

    .venv/bin/python bench/core.py                  # SQLite, and PostgreSQL if reachable
    .venv/bin/python bench/core.py -n 2000 --pg-url postgresql+psycopg://postgres@127.0.0.1:55432/postgres

Figures, not a pass/fail test.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import create_engine, event, select, text, update
from sqlalchemy.engine import Engine, make_url

from pamcore.audit import AuditKeyring
from pamcore.clock import utcnow
from pamcore.config import load_config
from pamcore.core import Pamcore
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, AuditEvent, Base, Resource, Role, User
from pamcore.plugins import build_plugin_host
from pamcore.services import scheduler
from pamcore.services.approvals import approve_session
from pamcore.services.sessions import SessionRequest, create_session, list_sessions
from pamcore.testing import builders as b
from pamcore.vault import MasterKey, write_key_file, write_keyring

USERS = 100


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


def make_core(url: str, workdir: Path) -> Pamcore:
    key = workdir / "master.key"
    write_key_file(key, MasterKey.generate())
    config = load_config(workdir, database_url=url, master_key_path=key)
    write_keyring(config.audit_key_path, AuditKeyring.of(MasterKey.generate()))
    core = Pamcore(config, plugins=build_plugin_host(strict=True, entry_points=False))
    Base.metadata.drop_all(core.engine)
    Base.metadata.create_all(core.engine)
    return core


def seed(core: Pamcore, n: int) -> tuple[list[int], list[int], int]:
    """USERS users and enough resources that each (user, resource) pair is unique."""
    resources = max(1, -(-n // USERS))
    with core.unit() as db:
        approver = b.make_user(db, "approver", Role.APPROVER)
        team = b.make_group(db, "Approvers", [approver])
        users = [b.make_user(db, f"user{i:03d}") for i in range(USERS)]
        res = [b.make_resource(db, f"host{i:04d}") for i in range(resources)]
        activity = b.make_activity(db, "Admin", pre=[("audit-note", {"message": "up"})])
        activity.credential = b.make_credential(core, db, "root", "root", "Bench-root-1!")
        profile = b.make_profile(db, "Approved", tiers=[(1, [], [team])], max_duration_minutes=480)
        b.make_policy(db, "all", profile, [activity], res, users=users)
        return [u.id for u in users], [r.id for r in res], approver.id


class StatementCounter:
    """SQL statements the engine sent, from every thread (each pool connection's cursor)."""

    def __init__(self, engine: Engine) -> None:
        self.count = 0
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: object) -> None:
        with self._lock:
            self.count += 1

    def per_item(self, items: int, fn: Callable[[], None]) -> tuple[float, float]:
        """(seconds ``fn`` took, statements it sent per item)."""
        before = self.count
        elapsed = timed(fn)
        return elapsed, (self.count - before) / items


def timed(fn: Callable[[], None]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def audit_rate(core: Pamcore, events: int, writers: int = scheduler.PROVISION_THREADS) -> float:
    """Audit events per second when ``writers`` threads each commit units of one event, as
    the scheduler's provisioning threads record their actions."""

    def write(count: int) -> None:
        for i in range(count):
            with core.unit() as db:
                core.audit(db, "bench", "bench.event", index=i)

    threads = [threading.Thread(target=write, args=(events // writers,)) for _ in range(writers)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return events // writers * writers / (time.perf_counter() - start)


def bench_backend(url: str, n: int, window: float) -> dict[str, float]:
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        core = make_core(url, Path(tmp))
        user_ids, resource_ids, approver_id = seed(core, n)
        statements = StatementCounter(core.engine)
        with core.reader() as db:
            hosts = {r.id: r.name for r in db.scalars(select(Resource))}
        far = utcnow() + dt.timedelta(days=1)
        ids: list[int] = []

        def create_all() -> None:
            for i in range(n):
                uid = user_ids[i % USERS]
                host = hosts[resource_ids[i // USERS]]
                with core.unit() as db:
                    user = db.get(User, uid)
                    req = SessionRequest("Admin", (host,), notes="bench", start=far)
                    ids.append(create_session(core, db, user, req).id)

        elapsed, figures["statements/create"] = statements.per_item(n, create_all)
        figures["created/s"] = n / elapsed

        def approve_all() -> None:
            for sid in ids:
                with core.unit() as db:
                    approve_session(core, db, db.get(User, approver_id), sid)

        elapsed, figures["statements/approval"] = statements.per_item(n, approve_all)
        figures["approved/s"] = n / elapsed

        events = min(n, 5000)
        before = statements.count
        figures["audit events/s"] = audit_rate(core, events)
        figures["statements/audit unit"] = (statements.count - before) / events

        # list-active latency: the dashboard's query, for an admin (all) and one user
        with core.unit() as db:
            admin = b.make_user(db, "admin", Role.ADMIN)
            admin_id = admin.id
        for who, uid in (("admin", admin_id), ("user", user_ids[0])):
            samples = []
            for _ in range(200):
                with core.reader() as db:
                    actor = db.get(User, uid)
                    start = time.perf_counter()
                    rows = list_sessions(db, actor, "active", limit=200)
                    for s in rows:  # render what the table shows
                        _ = (s.activity.name, [r.name for r in s.resources], s.requester.username)
                    samples.append((time.perf_counter() - start) * 1000)
            figures[f"list {who} p50 ms"] = pct(samples, 50)
            figures[f"list {who} p95 ms"] = pct(samples, 95)

        # activation lag: spread the starts over `window` seconds from now, tick every 0.2 s
        base = utcnow() + dt.timedelta(seconds=1)
        with core.unit() as db:
            step = window / n
            for offset, sid in enumerate(ids):
                db.execute(
                    update(ActivitySession)
                    .where(ActivitySession.id == sid)
                    .values(scheduled_start=base + dt.timedelta(seconds=offset * step))
                )
        deadline = time.monotonic() + window + 600

        def drain() -> None:
            activated = 0
            while activated < n and time.monotonic() < deadline:
                report = scheduler.tick(core, worker="bench", batch=500)
                activated += len(report.activated)
                if not report.activated:
                    time.sleep(0.2)

        drained, per_session = statements.per_item(n, drain)
        figures["activation drain s"] = drained
        figures["statements/activation"] = per_session
        with core.reader() as db:
            lags = [
                float(d["lag_seconds"])
                for d in db.scalars(
                    select(AuditEvent.details).where(AuditEvent.action == "session.available")
                )
            ]
            ok = db.scalar(
                select(text("count(*)"))
                .select_from(ActivitySession)
                .where(ActivitySession.status == Status.AVAILABLE.value)
            )
        figures["activated"] = float(ok or 0)
        figures["lag p50 ms"] = pct(lags, 50) * 1000 if lags else float("nan")
        figures["lag p99 ms"] = pct(lags, 99) * 1000 if lags else float("nan")

        # baseline: the same number of session rows inserted with the bare ORM, no rules
        with core.unit() as db:
            user, res = db.get(User, user_ids[0]), db.get(Resource, resource_ids[0])
            session0 = db.get(ActivitySession, ids[0])
            profile, activity = session0.profile, session0.activity

        def raw_insert() -> None:
            for _ in range(n):
                with core.unit() as db:
                    db.add(
                        ActivitySession(
                            requester_id=user.id,
                            activity_id=activity.id,
                            profile_id=profile.id,
                            scheduled_start=far,
                            status=Status.SCHEDULED,
                            resources=[db.get(Resource, res.id)],
                        )
                    )

        figures["baseline ORM inserts/s"] = n / timed(raw_insert)
        core.dispose()
    return figures


def fresh_pg_database(admin_url: str) -> str:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS pamcore_bench WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE pamcore_bench"))
    engine.dispose()
    return make_url(admin_url).set(database="pamcore_bench").render_as_string(False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="sessions per backend")
    parser.add_argument("--window", type=float, default=30.0, help="seconds the starts spread")
    parser.add_argument("--pg-url", default=os.environ.get("PAMCORE_TEST_PG_URL"))
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        print(f"SQLite: {args.n} sessions ...", file=sys.stderr)
        results["SQLite"] = bench_backend(f"sqlite:///{tmp}/bench.db", args.n, args.window)
    if args.pg_url:
        print(f"PostgreSQL: {args.n} sessions ...", file=sys.stderr)
        results["PostgreSQL"] = bench_backend(fresh_pg_database(args.pg_url), args.n, args.window)
    else:
        print("PostgreSQL skipped: give --pg-url or PAMCORE_TEST_PG_URL", file=sys.stderr)

    names = list(next(iter(results.values())))
    print(f"\npamcore core bench, {args.n} sessions, starts spread over {args.window:.0f} s")
    print(f"{'figure':<26}" + "".join(f"{k:>14}" for k in results))
    for name in names:
        print(f"{name:<26}" + "".join(f"{results[k][name]:>14.1f}" for k in results))


if __name__ == "__main__":
    main()
