"""The browser terminal's way in: a WebSocket listener (default port 4423) beside the SSH
listener, for the dashboard's xterm.js page.

The page's first message is ``{"type": "auth", "token": ..., "cols": .., "rows": ..}`` (the
token never travels in a URL, so it is in no access log); it is redeemed once, then the
connection goes through the same admission, target connection and relay as an SSH client
(:meth:`pamcore_ssh.listener.ProxyListener.open_link`). Afterwards binary frames carry
terminal data both ways and text frames carry ``{"type": "resize", "cols": .., "rows": ..}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import asyncssh
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from pamcore.config import Config
from pamcore.errors import AuthenticationFailed, ConfigurationError, PamError
from pamcore.proxy import check_origin, redeem_token
from pamcore_ssh import lobby
from pamcore_ssh.admission import PROTOCOL

if TYPE_CHECKING:
    from pamcore_ssh.listener import ProxyListener
    from pamcore_ssh.relay import Link

log = logging.getLogger(__name__)
#: websockets logs whole frames at DEBUG, the token among them: its logger stays at INFO.
_wire_log = logging.getLogger(f"{__name__}.wire")

PLUGIN = "ssh"
DEFAULT_TERMINAL_PORT = 4423
#: How long the page has to send its token after the WebSocket opens.
HELLO_SECONDS = 10.0
#: WebSocket close code for a refusal (RFC 6455 §7.4.1, policy violation).
CLOSE_REFUSED = 1008
MAX_SIZE = 1000


def terminal_port(config: Config) -> int:
    """``[plugins.ssh] terminal_port``: where the browser terminal listens."""
    value = config.plugin_settings.get(PLUGIN, {}).get("terminal_port", DEFAULT_TERMINAL_PORT)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 65536:
        raise ConfigurationError(f"[plugins.{PLUGIN}] terminal_port must be a port, not {value!r}")
    return value


def terminal_url(config: Config) -> str:
    """The WebSocket address the dashboard's terminal page connects to."""
    scheme = "wss" if config.web_tls_cert and config.web_tls_key else "ws"
    return f"{scheme}://{config.public_host}:{terminal_port(config)}/"


def _tls(config: Config) -> ssl.SSLContext | None:
    """The dashboard's certificate: an https page may only open a wss:// socket."""
    if not (config.web_tls_cert and config.web_tls_key):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(config.web_tls_cert, config.web_tls_key)
    return context


def _size(message: Mapping[str, Any]) -> tuple[int, int] | None:
    cols, rows = message.get("cols"), message.get("rows")
    if isinstance(cols, int) and isinstance(rows, int):
        return min(max(cols, 1), MAX_SIZE), min(max(rows, 1), MAX_SIZE)
    return None


def _json(text: str) -> dict[str, Any]:
    with contextlib.suppress(ValueError):
        message = json.loads(text)
        if isinstance(message, dict):
            return message
    return {}


class _Screen:
    """Output to the browser, in order, as binary frames; ``drain`` waits for the socket."""

    def __init__(self, ws: ServerConnection) -> None:
        self._ws = ws
        self._pending = bytearray()
        self._sending: asyncio.Task[None] | None = None

    def write(self, data: bytes) -> None:
        self._pending += data
        if self._sending is None or self._sending.done():
            self._sending = asyncio.get_running_loop().create_task(self._send())

    async def _send(self) -> None:
        while self._pending:
            chunk = bytes(self._pending)
            self._pending.clear()
            try:
                await self._ws.send(chunk)
            except ConnectionClosed:
                self._pending.clear()

    async def drain(self) -> None:
        if self._sending is not None:
            await asyncio.shield(self._sending)


class BrowserTerminal:
    """One xterm.js page as the relay's client: a PTY shell, never exec or sftp."""

    term_type = "xterm-256color"
    command: str | None = None
    subsystem: str | None = None

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.term_size = (80, 24, 0, 0)
        self.term_modes: Mapping[int, int] = {}
        self.env: Mapping[str, str] = {}
        self.stdout = self.stderr = _Screen(ws)
        self._closing: asyncio.Task[None] | None = None

    @property
    def stdin(self) -> BrowserTerminal:
        return self

    def hello(self, message: str | bytes) -> str:
        """The token of the page's first message (its size is kept)."""
        hello = _json(message) if isinstance(message, str) else {}
        token = hello.get("token")
        if hello.get("type") != "auth" or not isinstance(token, str):
            raise AuthenticationFailed("the terminal page sent no token; reload the page")
        size = _size(hello)
        if size is not None:
            self.term_size = (*size, 0, 0)
        return token

    async def read(self, n: int = -1) -> bytes:
        """Keystrokes; ``b""`` once the page is gone; a resize raises
        ``TerminalSizeChanged`` as an SSH window change does."""
        while True:
            try:
                message = await self.ws.recv()
            except ConnectionClosed:
                return b""
            if isinstance(message, bytes):
                return message
            resize = _json(message)
            size = _size(resize) if resize.get("type") == "resize" else None
            if size is not None:
                self.term_size = (*size, 0, 0)
                raise asyncssh.TerminalSizeChanged(*size, 0, 0)

    def exit(self, status: int) -> None:
        self.close()

    def exit_with_signal(
        self, signal: str, core_dumped: bool = False, msg: str = "", lang: str = ""
    ) -> None:
        self.close()

    def close(self, code: int = 1000) -> None:
        """Send what is pending, then close the socket (once)."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close(code))

    async def _close(self, code: int) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self.stdout.drain()
        await self.ws.close(code)

    async def wait_closed(self) -> None:
        await self.ws.wait_closed()


class TerminalListener:
    """The WebSocket server; connections it admits are the proxy listener's links."""

    def __init__(self, proxy: ProxyListener, secret: str) -> None:
        self.proxy = proxy
        self.core = proxy.core
        self._secret = secret
        self._server: Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, host: str, port: int) -> None:
        _wire_log.setLevel(logging.INFO)
        self._server = await serve(
            self._serve,
            host,
            port,
            ssl=_tls(self.core.config),
            logger=_wire_log,
            server_header=None,
        )
        log.info("ssh browser terminal listening on %s:%s", host, self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, ws: ServerConnection) -> None:
        terminal = BrowserTerminal(ws)
        address = ws.remote_address or ("", 0)
        peer = f"{address[0]}:{address[1]}"
        try:
            link = await self._admit(terminal, peer)
        except PamError as exc:
            log.info("browser terminal refused from %s: %s", peer, exc)
            lobby.say(terminal, str(exc))
            terminal.close(CLOSE_REFUSED)
            await terminal.wait_closed()
            return
        relay = asyncio.create_task(link.relay(terminal))
        gone = asyncio.create_task(terminal.wait_closed())
        await asyncio.wait({relay, gone}, return_when=asyncio.FIRST_COMPLETED)
        self.proxy.finish(link, link.closing or "closed by the client")
        await relay
        gone.cancel()

    async def _admit(self, terminal: BrowserTerminal, peer: str) -> Link:
        """A page of another site is refused before its first message is read. The
        handshake itself is accepted so the refusal reaches the page: a browser shows a
        refused handshake (HTTP 403) only as a closed socket, without the reason."""
        assert terminal.ws.request is not None
        origin = terminal.ws.request.headers.get("Origin")
        await asyncio.to_thread(check_origin, self.core, origin, peer, PLUGIN)
        try:
            message = await asyncio.wait_for(terminal.ws.recv(), HELLO_SECONDS)
        except (TimeoutError, ConnectionClosed):
            raise AuthenticationFailed("no terminal token arrived; reload the page") from None
        token = terminal.hello(message)
        redeemed = await asyncio.to_thread(redeem_token, self.core, token, PROTOCOL, self._secret)
        return await self.proxy.open_link(
            terminal, redeemed.user_id, None, redeemed.resource_name, peer, redeemed.session_id
        )
