"""The Server Redirection PDU that sends the client back to the proxy with a one-time
redirect token (MS-RDPBCGR 2.2.13.1 RDP_SERVER_REDIRECTION_PACKET inside 2.2.13.3.1 Enhanced
Security Server Redirection).

Only LB_LOAD_BALANCE_INFO is set: with no target address the client reconnects to the
host it dialled and puts the load-balance info verbatim into its next X.224 Connection
Request (FreeRDP libfreerdp/core/connection.c rdp_client_redirect, nego.c), where the
listener reads the token back. Windows brokers write the same ``Cookie: msts=...`` form.
"""

from __future__ import annotations

import struct

from pamcore_rdp.pdu.share import PDUTYPE_SERVER_REDIR_PKT, share_control

SEC_REDIRECTION_PKT = 0x0400
LB_LOAD_BALANCE_INFO = 0x00000002
#: Sessions are not brokered: the redirected connection starts a new one.
NO_SESSION_ID = 0


def redirect_cookie(token: str) -> bytes:
    """What goes into LoadBalanceInfo, and so into the next Connection Request."""
    return f"Cookie: msts={token}\r\n".encode("ascii")


def server_redirection(token: str, source: int) -> bytes:
    """The I/O-channel payload redirecting the client to us with ``token``.

    Layout: Share Control Header (type SERVER_REDIR_PKT), pad2Octets, then the packet
    (flags, length, sessionId, redirFlags, LoadBalanceInfoLength + data) and its 8-byte
    pad, which FreeRDP consumes when present (redirection.c).
    """
    info = redirect_cookie(token)
    fields = struct.pack("<I", len(info)) + info
    length = 12 + len(fields)
    packet = struct.pack("<HHII", SEC_REDIRECTION_PKT, length, NO_SESSION_ID, LB_LOAD_BALANCE_INFO)
    return share_control(PDUTYPE_SERVER_REDIR_PKT, source, b"\0\0" + packet + fields + b"\0" * 8)
