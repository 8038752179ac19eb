"""The Prometheus metrics of a pamcore process: counters and histograms the code bumps as
things happen (relayed bytes, failed sign-ins, scheduler lag, action runs), and gauges read
from the database at scrape time (sessions by status, live connections), so that every
process of an instance reports the same totals whichever one is scraped.

The event metrics live in one registry per process (:data:`PROCESS`); the database gauges
are read per core by :class:`DatabaseCollector`; :class:`Exposition` joins both. Labels
carry no user names, addresses or secrets: only statuses, protocols, proxy nodes and action
types (docs/design/monitoring.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from pamcore.core import Pamcore
from pamcore.health import missing_database_file, quick_read
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, LiveConnection

log = logging.getLogger(__name__)

#: What ``/metrics`` answers with (Prometheus text format 0.0.4).
CONTENT_TYPE = CONTENT_TYPE_LATEST

#: This process's event metrics (plus the standard process, platform and GC ones).
PROCESS = CollectorRegistry()
ProcessCollector(registry=PROCESS)
PlatformCollector(registry=PROCESS)
GCCollector(registry=PROCESS)

RELAYED_BYTES = Counter(
    "pamcore_relayed_bytes",
    "Bytes a proxy relayed between clients and targets.",
    ["protocol", "direction"],
    registry=PROCESS,
)
SIGN_IN_FAILURES = Counter(
    "pamcore_sign_in_failures",
    "Refused sign-ins (dashboard, proxies), by what was checked.",
    ["method"],
    registry=PROCESS,
)
SCHEDULER_LAG = Histogram(
    "pamcore_scheduler_lag_seconds",
    "From a session's scheduled start to the scheduler making it available.",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=PROCESS,
)
ACTION_DURATION = Histogram(
    "pamcore_action_duration_seconds",
    "How long one session action took on one resource.",
    ["action_type", "phase"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
    registry=PROCESS,
)
ACTION_FAILURES = Counter(
    "pamcore_action_failures",
    "Session actions that failed.",
    ["action_type", "phase"],
    registry=PROCESS,
)


def relayed(protocol: str, direction: str) -> Counter:
    """The byte counter of one protocol's relay direction (``to_target`` or ``to_client``),
    which a relay looks up once, so that a relayed chunk costs one increment."""
    return RELAYED_BYTES.labels(protocol=protocol, direction=direction)


class DatabaseCollector(Collector):
    """Sessions by status and live connections by protocol and node, read at scrape time
    (two GROUP BY queries). A database error leaves these gauges out, sets
    ``pamcore_database_up`` to 0 and is logged: the scrape itself still answers."""

    def __init__(self, core: Pamcore) -> None:
        self.core = core

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "pamcore_database_up", "1 when the metrics' database queries succeeded."
        )
        try:
            families = self._read()
        except SQLAlchemyError as exc:
            # The driver's message only: SQLAlchemy's own text may include bound parameters.
            log.warning(
                "metrics: database error %s: %s",
                type(exc).__name__,
                getattr(exc, "orig", None) or "see the database log",
            )
            families = []
        up.add_metric([], 1 if families else 0)
        yield up
        yield from families

    def _read(self) -> list[Metric]:
        if missing_database_file(self.core) is not None:
            return []
        with quick_read(self.core) as conn:
            by_status = dict(
                conn.execute(
                    select(ActivitySession.status, func.count()).group_by(ActivitySession.status)
                ).all()
            )
            live = conn.execute(
                select(LiveConnection.protocol, LiveConnection.node, func.count())
                .where(LiveConnection.closed_at.is_(None))
                .group_by(LiveConnection.protocol, LiveConnection.node)
            ).all()
        sessions = GaugeMetricFamily(
            "pamcore_sessions", "Activity sessions by status.", labels=["status"]
        )
        for status in Status:
            sessions.add_metric([status.value], by_status.get(status.value, 0))
        connections = GaugeMetricFamily(
            "pamcore_live_connections",
            "Open proxy connections by protocol and proxy node.",
            labels=["protocol", "node"],
        )
        for protocol, node, count in live:
            connections.add_metric([protocol, node], count)
        return [sessions, connections]


class Exposition:
    """What ``/metrics`` answers for one core: this process's metrics and the database's."""

    def __init__(self, core: Pamcore) -> None:
        self._registry = CollectorRegistry()
        self._registry.register(_Joined(DatabaseCollector(core)))

    def render(self) -> bytes:
        return generate_latest(self._registry)


class _Joined(Collector):
    """The process registry followed by one core's database gauges."""

    def __init__(self, database: DatabaseCollector) -> None:
        self._database = database

    def collect(self) -> Iterator[Metric]:
        yield from PROCESS.collect()
        yield from self._database.collect()
