"""What the RDP target-trust tests share (the fake-target tests and the real-peer ones): a
scripted client that drives the relay up to the Client Info PDU, and the resource's pin,
settings and audit events as the tests read and change them."""

from __future__ import annotations

import socket
import ssl

from rdp_frames import (
    ATTACH_USER_REQUEST,
    CHANNEL_JOIN_IO,
    CHANNEL_JOIN_USER,
    CLIENT_INFO,
    CONNECT_INITIAL,
    ERECT_DOMAIN_REQUEST,
    XFREERDP_TLS_ONLY,
)
from relay_standin import RESOURCE
from sqlalchemy import select

from pamcore.core import Pamcore
from pamcore.model import AuditEvent, Resource
from pamcore.services.directory import get_user
from pamcore.services.inventory import set_setting, unset_setting


def drive_client(port: int) -> None:
    """The client side up to and past the Client Info PDU (TLS to the proxy, whose
    certificate the client test does not check); closes after a short wait."""
    with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
        raw.sendall(XFREERDP_TLS_ONLY)
        raw.recv(4096)  # Connection Confirm (the relay's, or the refusal card's)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with context.wrap_socket(raw) as tls:
            for frame in (
                CONNECT_INITIAL,
                ERECT_DOMAIN_REQUEST,
                ATTACH_USER_REQUEST,
                CHANNEL_JOIN_USER,
                CHANNEL_JOIN_IO,
                CLIENT_INFO,
            ):
                tls.sendall(frame)
            tls.settimeout(1.5)
            try:
                while tls.recv(65536):
                    pass
            except (TimeoutError, OSError, ssl.SSLError):
                pass


def setting(core: Pamcore, key: str, value: str | None) -> None:
    with core.unit() as db:
        erin = get_user(db, "erin")
        if value is None:
            unset_setting(core, db, erin, RESOURCE, "rdp", key)
        else:
            set_setting(core, db, erin, RESOURCE, "rdp", key, value)


def pinned(core: Pamcore) -> str | None:
    with core.reader() as db:
        resource = db.scalars(select(Resource).where(Resource.name == RESOURCE)).one()
        return (resource.settings or {}).get("rdp", {}).get("certificate_sha256")


def audited(core: Pamcore, action: str) -> list[AuditEvent]:
    with core.reader() as db:
        events = list(db.scalars(select(AuditEvent).where(AuditEvent.action == action)))
        db.expunge_all()
        return events
