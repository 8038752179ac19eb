"""The RDP listener with raw sockets: whatever a client sends, the listener answers the
next client; the first answer is an X.224 Connection Confirm selecting TLS (or a failure
for a client without TLS); the plugin starts it through ``listener_factory``; the session
hook reaches running listeners. Real-client tests are in test_front.py and
test_redirection.py."""

from __future__ import annotations

import socket
import ssl
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from pamcore_rdp.pdu.x224 import (
    PROTOCOL_HYBRID,
    PROTOCOL_RDP,
    PROTOCOL_SSL,
    SSL_REQUIRED_BY_SERVER,
    encode_connection_request,
    parse_connection_confirm,
)
from pamcore_rdp.proxy.listener import RdpListener
from rdp_world import RdpWorld, rdp_world

from pamcore.registry import ProtocolHandler
from pamcore_rdp import plugin


@pytest.fixture
def world(tmp_path: Path) -> Iterator[RdpWorld]:
    yield from rdp_world(tmp_path)


def connect(world: RdpWorld) -> socket.socket:
    return socket.create_connection(("127.0.0.1", world.port), timeout=10)


def read_tpkt(sock: socket.socket) -> bytes:
    head = recv_exactly(sock, 4)
    return head + recv_exactly(sock, struct.unpack(">H", head[2:])[0] - 4)


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"closed after {len(data)} of {size} bytes")
        data += chunk
    return data


def closed_by_peer(sock: socket.socket) -> bool:
    """True when the listener closed the connection (EOF or reset) within the socket's
    timeout, whatever it answered first."""
    try:
        while sock.recv(4096):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True


def confirm_selects_tls(world: RdpWorld) -> None:
    """A well-formed client still gets a Connection Confirm selecting TLS, then TLS."""
    with connect(world) as sock:
        sock.sendall(encode_connection_request(cookie="alice", requested_protocols=3))
        confirm = parse_connection_confirm(read_tpkt(sock))
        assert (confirm.selected_protocol, confirm.failure_code) == (PROTOCOL_SSL, None)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(sock) as tls:
            assert tls.version() in ("TLSv1.2", "TLSv1.3")


GARBAGE = [
    b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",  # not RDP at all
    b"\x03\x00\x00\x02",  # TPKT shorter than its own header
    b"\x03\x00\xff\xff" + b"\x00" * 100,  # TPKT promising more than it sends, then EOF
    b"\x03\x00\x00\x0b\x0e\xe0\x00\x00\x00\x00\x00",  # CR whose LI disagrees with the length
    b"\x03\x00\x00\x13\x0e\xe0\x00\x00\x00\x00\x00\x01\x00\x09\x00\x03\x00\x00\x00",  # bad neg
    b"\x00\x05\x01\x02\x03",  # fast-path before any connection request
]


@pytest.mark.parametrize("garbage", GARBAGE, ids=range(len(GARBAGE)))
def test_garbage_closes_that_connection_only(world: RdpWorld, garbage: bytes) -> None:
    with connect(world) as sock:
        sock.sendall(garbage)
        sock.shutdown(socket.SHUT_WR)
        assert closed_by_peer(sock)
    confirm_selects_tls(world)


def test_garbage_after_tls_and_a_silent_client(world: RdpWorld) -> None:
    with connect(world) as sock:
        sock.sendall(encode_connection_request(requested_protocols=PROTOCOL_SSL))
        read_tpkt(sock)
        sock.sendall(b"\x16\x03\x01\x00\x05hello")  # a broken TLS ClientHello
        assert closed_by_peer(sock)
    world.listener.request_timeout = 2
    with connect(world) as silent:  # connects and says nothing: the others go on
        confirm_selects_tls(world)
        silent.settimeout(10)
        assert closed_by_peer(silent)  # dropped after the Connection Request timeout
    world.wait_log("stopped answering")


def test_a_client_without_tls_is_told_tls_is_required(world: RdpWorld) -> None:
    for protocols in (PROTOCOL_RDP, PROTOCOL_HYBRID):
        with connect(world) as sock:
            sock.sendall(encode_connection_request(requested_protocols=protocols))
            confirm = parse_connection_confirm(read_tpkt(sock))
            assert confirm.failure_code == SSL_REQUIRED_BY_SERVER
            assert closed_by_peer(sock)


def test_the_plugin_starts_this_listener(world: RdpWorld) -> None:
    handlers: list[ProtocolHandler] = []
    plugin.pamcore_register_protocols(handlers.append)
    (handler,) = handlers
    assert handler.listener_factory is not None
    made = handler.listener_factory(world.core, "127.0.0.1", 0)
    assert isinstance(made, RdpListener) and made.port == 0
    assert plugin.DEFAULT_PORT == 4489
