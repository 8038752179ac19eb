"""Serving with cheroot (a production WSGI server) in a thread: the dashboard, the web
service of ``pamcore run`` and ``pamcore web``, with TLS when a certificate is configured;
and the monitoring listener of ``pamcore worker`` and ``pamcore proxy`` (``metrics_port``)."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError
from pamcore.health import ServiceStates
from pamcore.monitoring import Monitor, json_answer
from pamcore.web.app import create_app

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

log = logging.getLogger(__name__)


class WsgiServer:
    """A WSGI app served by cheroot from a thread on ``host:port`` (port 0: any free port,
    for tests), over TLS when given a certificate and key."""

    def __init__(
        self,
        app: WSGIApplication,
        host: str,
        port: int,
        *,
        threads: int,
        tls: tuple[Path, Path] | None = None,
        thread_name: str = "pamcore-web",
    ) -> None:
        self.tls = tls is not None
        self._thread_name = thread_name
        self._server = wsgi.Server((host, port), app, numthreads=threads, server_name=host)
        if tls is not None:
            self._server.ssl_adapter = BuiltinSSLAdapter(str(tls[0]), str(tls[1]))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.bind_addr[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def start(self) -> str:
        """Bind now (so a busy port fails here, not in the thread), then serve."""
        self._server.prepare()
        self._thread = threading.Thread(
            target=self._server.serve, name=self._thread_name, daemon=True
        )
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)

    async def start_async(self) -> str:
        return await asyncio.to_thread(self.start)

    async def stop_async(self) -> None:
        await asyncio.to_thread(self.stop)


class WebServer(WsgiServer):
    """The dashboard on ``host:port``; ``states`` are the services of the process it runs
    in, for ``/readyz``."""

    def __init__(
        self,
        core: Pamcore,
        host: str,
        port: int,
        *,
        threads: int = 16,
        config_overrides: dict[str, Any] | None = None,
        states: ServiceStates | None = None,
    ) -> None:
        cert, key = core.config.web_tls_cert, core.config.web_tls_key
        if bool(cert) != bool(key):
            raise ConfigurationError("give both web_tls_cert and web_tls_key, or neither")
        self.app = create_app(core, config_overrides, states=states)
        tls = (cert, key) if cert is not None and key is not None else None
        super().__init__(self.app, host, port, threads=threads, tls=tls)


class WebService:
    """The runtime's face of :class:`WebServer` (see :class:`pamcore.runtime.Service`)."""

    name = "web dashboard"

    def __init__(
        self,
        core: Pamcore,
        host: str | None = None,
        port: int | None = None,
        states: ServiceStates | None = None,
    ) -> None:
        self._core = core
        self._host = host or core.config.web_bind
        self._port = core.config.web_port if port is None else port
        self._states = states
        self._server: WebServer | None = None

    async def start(self) -> str:
        self._server = WebServer(self._core, self._host, self._port, states=self._states)
        return await self._server.start_async()

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop_async()


class MonitoringService:
    """The monitoring paths on ``metrics_bind:metrics_port`` (see
    :class:`pamcore.runtime.Service`), for processes that serve no dashboard."""

    name = "monitoring"

    def __init__(self, core: Pamcore, states: ServiceStates, port: int) -> None:
        self._monitor = Monitor(core, states)
        self._server = WsgiServer(
            self._wsgi, core.config.metrics_bind, port, threads=2, thread_name="pamcore-monitoring"
        )

    def _wsgi(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        try:
            answer = (
                self._monitor.answer(environ.get("PATH_INFO", ""))
                if environ.get("REQUEST_METHOD") in ("GET", "HEAD")
                else None
            )
        except Exception:
            log.exception("monitoring: %s failed", environ.get("PATH_INFO"))
            answer = json_answer(500, status="error", reason="the check failed; see the log")
        if answer is None:
            answer = json_answer(404, status="not found", reason="see /healthz, /readyz, /metrics")
        start_response(
            f"{answer.status} {HTTPStatus(answer.status).phrase}",
            [
                ("Content-Type", answer.content_type),
                ("Content-Length", str(len(answer.body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [answer.body]

    async def start(self) -> str:
        return await self._server.start_async()

    async def stop(self) -> None:
        await self._server.stop_async()


def monitoring_services(
    core: Pamcore, states: ServiceStates, port: int | None = None
) -> list[MonitoringService]:
    """The monitoring listener on ``port`` (a command's ``--metrics-port``), else on
    ``metrics_port`` when set; none otherwise."""
    port = port or core.config.metrics_port
    return [] if port is None else [MonitoringService(core, states, port)]
