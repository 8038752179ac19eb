"""Session changes pushed to every node once committed: a session ended, expired, was
canceled or extended, or an administrator asked for a connection to be terminated.

A change is a wake-up, not a fact: whoever hears it (a proxy's watch) reads the database
again, so a change heard twice, late, or for a unit that rolled back costs one extra query
and nothing else. The committing unit's own process hears it right after the commit; on
PostgreSQL the unit also sends ``NOTIFY`` (delivered only if it commits) and every process
keeps one ``LISTEN`` connection in a background thread. The watches' once-a-second poll
stays: the path on SQLite, whose other processes hear nothing, and the safety net when the
``LISTEN`` connection is down (docs/design/session-changes.md).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

log = logging.getLogger(__name__)

#: The PostgreSQL channel every node listens on.
CHANNEL = "pamcore_session_changes"
#: Where a unit keeps the changes it announced until it commits (``Session.info``).
_PENDING = "pamcore_session_changes"
#: How often the listening thread checks that it should stop, and waits before reconnecting.
_LISTEN_SECONDS = 0.25
_RECONNECT_SECONDS = 2.0

#: The kinds of change: an ending's outcome (``ended``, ``expired``, ``canceled``),
#: ``extended``, ``terminated`` (one connection), and ``resync`` (the listening connection
#: was down, so a change may have been missed: read everything again).
EXTENDED = "extended"
TERMINATED = "terminated"
RESYNC = "resync"


@dataclass(frozen=True)
class SessionChange:
    """What changed (``kind``) for which session; ``connection_id`` for a termination."""

    session_id: int
    kind: str
    connection_id: int | None = None
    #: The node whose unit committed it.
    node: str = ""


Subscriber = Callable[[SessionChange], None]


class SessionChanges:
    """One node's hub: units announce changes into it, subscribers (the proxies' watches)
    are called with every committed change, from the committing thread or the listening
    thread. A subscriber must only hand the change over (e.g. ``call_soon_threadsafe``)."""

    def __init__(self, engine: Engine, node: str) -> None:
        self.node = node
        self._engine = engine
        #: Marks this hub's notifications, which it already delivered after the commit
        #: (two cores in one process share a node name, not a hub).
        self._origin = secrets.token_hex(8)
        self._subscribers: dict[object, Subscriber] = {}
        self._lock = threading.Lock()
        self._listening: _Listening | None = None

    @property
    def listening(self) -> bool:
        """Whether this node's ``LISTEN`` connection is up (other nodes' changes reach it
        at once; otherwise they wait for the watches' poll)."""
        listening = self._listening
        return listening is not None and listening.up.is_set()

    def watch_units(self, factory: sessionmaker[Session]) -> None:
        """Deliver what ``factory``'s units announce once (and only if) they commit."""
        event.listen(factory, "after_commit", self._committed)
        event.listen(factory, "after_soft_rollback", _forget)

    def announce(
        self, db: Session, session_id: int, kind: str, connection_id: int | None = None
    ) -> None:
        """Tell every node, once ``db`` commits, that ``session_id`` changed."""
        change = SessionChange(session_id, kind, connection_id, self.node)
        db.info.setdefault(_PENDING, []).append(change)
        if self._engine.dialect.name == "postgresql":
            payload = json.dumps({**asdict(change), "origin": self._origin}, separators=(",", ":"))
            db.execute(select(func.pg_notify(CHANNEL, payload)))

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call ``subscriber`` with every change from now on; returns the unsubscribe. The
        first subscriber starts the ``LISTEN`` thread on PostgreSQL; :meth:`close` stops it."""
        key = object()
        with self._lock:
            self._subscribers[key] = subscriber
            if self._listening is None and self._engine.dialect.name == "postgresql":
                self._listening = _Listening(self._engine, self)
                self._listening.start()

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers.pop(key, None)

        return unsubscribe

    def deliver(self, change: SessionChange) -> None:
        """Hand ``change`` to every subscriber; one that fails is logged, the others still
        hear it."""
        with self._lock:
            subscribers = list(self._subscribers.values())
        for subscriber in subscribers:
            try:
                subscriber(change)
            except Exception:
                log.exception("a session-change subscriber failed on %s", change.kind)

    def close(self) -> None:
        """Stop listening (the core is disposed)."""
        with self._lock:
            self._subscribers.clear()
            listening, self._listening = self._listening, None
        if listening is not None:
            listening.stop()

    def heard(self, payload: str) -> None:
        """Deliver a notification's change, unless this hub sent it (delivered already)."""
        try:
            data = json.loads(payload)
            if data.get("origin") == self._origin:
                return
            change = SessionChange(
                int(data["session_id"]),
                str(data["kind"]),
                None if data.get("connection_id") is None else int(data["connection_id"]),
                str(data.get("node", "")),
            )
        except (ValueError, KeyError, TypeError, AttributeError):
            log.warning("session changes: unreadable notification ignored")
            return
        self.deliver(change)

    def _committed(self, db: Session) -> None:
        for change in db.info.pop(_PENDING, ()):
            self.deliver(change)


def _forget(db: Session, rolled_back: SessionTransaction) -> None:
    """The unit rolled back: nothing to tell. A savepoint's rollback keeps what was
    announced (a wake-up too many costs one query; one too few waits for the poll)."""
    if not rolled_back.nested:
        db.info.pop(_PENDING, None)


class _Listening:
    """The node's one ``LISTEN`` connection (psycopg 3, autocommit) in a daemon thread; it
    reconnects after a failure and then delivers :data:`RESYNC`."""

    def __init__(self, engine: Engine, hub: SessionChanges) -> None:
        self._engine = engine
        self._hub = hub
        self._stopping = threading.Event()
        self.up = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"pamcore-listen-{hub.node}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Stop and wait for the connection to close (a test drops its database next)."""
        self._stopping.set()
        self._thread.join(timeout=_RECONNECT_SECONDS + 1)

    def _run(self) -> None:
        missed = False
        while not self._stopping.is_set():
            try:
                self._listen(resync=missed)
            except Exception as exc:
                # The driver's message names host, port and user, never the password.
                first_line = (str(exc).strip().splitlines() or ["no detail"])[0]
                log.warning(
                    "session changes: listening failed (%s: %s); polling until it is back",
                    type(exc).__name__,
                    first_line,
                )
            finally:
                self.up.clear()
            missed = True
            self._stopping.wait(_RECONNECT_SECONDS)

    def _listen(self, resync: bool) -> None:
        import psycopg

        with psycopg.connect(**_connect_args(self._engine), autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.up.set()
            if resync:
                self._hub.deliver(SessionChange(0, RESYNC))
            while not self._stopping.is_set():
                for note in conn.notifies(timeout=_LISTEN_SECONDS):
                    self._hub.heard(note.payload)


def _connect_args(engine: Engine) -> dict[str, Any]:
    """libpq keywords from the engine's URL (host, port, user, password, database, query)."""
    url = engine.url
    args: dict[str, Any] = {
        "host": url.host,
        "port": url.port,
        "user": url.username,
        "password": url.password,
        "dbname": url.database,
        "application_name": "pamcore-session-changes",
        **{key: value for key, value in url.query.items() if isinstance(value, str)},
    }
    return {key: value for key, value in args.items() if value is not None}
