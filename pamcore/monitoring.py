"""``/healthz``, ``/readyz`` and ``/metrics``: what each path answers, in one place for
the dashboard's routes and for the small listener of processes without a dashboard
(:class:`pamcore.web.server.MonitoringService`, on ``metrics_port``). None of the paths
asks for a sign-in, so none shows a secret or a user name.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass

from pamcore.core import Pamcore
from pamcore.health import ServiceStates, readiness
from pamcore.metrics import CONTENT_TYPE, Exposition

log = logging.getLogger(__name__)

JSON = "application/json"


@dataclass(frozen=True)
class Answer:
    status: int
    content_type: str
    body: bytes


def json_answer(code: int, **fields: str) -> Answer:
    """A one-line JSON body, e.g. ``{"status": "not ready", "reason": "..."}``."""
    return Answer(code, JSON, json.dumps(fields).encode() + b"\n")


class Monitor:
    """The monitoring paths of one process: alive, ready (with the first reason it is
    not), and its metrics unless they are switched off."""

    def __init__(
        self, core: Pamcore, states: ServiceStates | None = None, *, metrics: bool = True
    ) -> None:
        self.core = core
        self.states = states
        self._exposition = Exposition(core) if metrics else None

    def healthz(self) -> Answer:
        """Alive: the process answers (a load balancer's liveness probe)."""
        return json_answer(200, status="alive")

    def readyz(self) -> Answer:
        reason = readiness(self.core, self.states)
        if reason is not None:
            return json_answer(503, status="not ready", reason=reason)
        return json_answer(200, status="ready")

    def metrics(self) -> Answer | None:
        if self._exposition is None:
            return None
        return Answer(200, CONTENT_TYPE, self._exposition.render())

    def answer(self, path: str) -> Answer | None:
        """The answer for ``path``, or ``None`` when it is not a monitoring path (or
        ``/metrics`` is switched off)."""
        pages: dict[str, Callable[[], Answer | None]] = {
            "/healthz": self.healthz,
            "/readyz": self.readyz,
            "/metrics": self.metrics,
        }
        page = pages.get(path)
        return page() if page is not None else None
