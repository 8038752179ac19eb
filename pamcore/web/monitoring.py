"""``/healthz``, ``/readyz`` and ``/metrics`` on the dashboard: no sign-in (a load balancer
or Prometheus asks), answers from :class:`pamcore.monitoring.Monitor`."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app

from pamcore.monitoring import Answer, Monitor

bp = Blueprint("monitoring", __name__)


def _monitor() -> Monitor:
    monitor: Monitor = current_app.extensions["pamcore_monitor"]
    return monitor


def _response(answer: Answer | None) -> Response:
    if answer is None:
        abort(404)
    return Response(answer.body, status=answer.status, content_type=answer.content_type)


@bp.get("/healthz")
def healthz() -> Response:
    return _response(_monitor().healthz())


@bp.get("/readyz")
def readyz() -> Response:
    return _response(_monitor().readyz())


@bp.get("/metrics")
def metrics() -> Response:
    return _response(_monitor().metrics())
