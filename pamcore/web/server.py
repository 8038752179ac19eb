"""Serving the dashboard with cheroot (a production WSGI server) in a thread: the web
service of ``pamcore run`` and ``pamcore web``, with TLS when a certificate is configured."""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter

from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError
from pamcore.web.app import create_app

log = logging.getLogger(__name__)


class WebServer:
    """The dashboard on ``host:port`` (port 0: any free port, for tests)."""

    def __init__(
        self,
        core: Pamcore,
        host: str,
        port: int,
        *,
        threads: int = 16,
        config_overrides: dict[str, Any] | None = None,
    ) -> None:
        cert, key = core.config.web_tls_cert, core.config.web_tls_key
        if bool(cert) != bool(key):
            raise ConfigurationError("give both web_tls_cert and web_tls_key, or neither")
        self.tls = cert is not None and key is not None
        self.app = create_app(core, config_overrides)
        self._server = wsgi.Server((host, port), self.app, numthreads=threads, server_name=host)
        if cert is not None and key is not None:
            self._server.ssl_adapter = BuiltinSSLAdapter(str(cert), str(key))
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.bind_addr[:2]
        return f"{'https' if self.tls else 'http'}://{host}:{port}"

    def start(self) -> str:
        """Bind now (so a busy port fails here, not in the thread), then serve."""
        self._server.prepare()
        self._thread = threading.Thread(target=self._server.serve, name="pamcore-web", daemon=True)
        self._thread.start()
        return self.url

    def stop(self) -> None:
        self._server.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)


class WebService:
    """The runtime's face of :class:`WebServer` (see :class:`pamcore.runtime.Service`)."""

    name = "web dashboard"

    def __init__(self, core: Pamcore, host: str | None = None, port: int | None = None) -> None:
        self._core = core
        self._host = host or core.config.web_bind
        self._port = core.config.web_port if port is None else port
        self._server: WebServer | None = None

    async def start(self) -> str:
        self._server = WebServer(self._core, self._host, self._port)
        return await asyncio.to_thread(self._server.start)

    async def stop(self) -> None:
        if self._server is not None:
            await asyncio.to_thread(self._server.stop)
