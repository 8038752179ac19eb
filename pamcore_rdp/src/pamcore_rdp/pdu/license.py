"""The licensing phase, skipped: the server tells the client it already holds a valid
licence (MS-RDPBCGR 2.2.1.12.1.3 and 1.3.1.1 "Licensing"; MS-RDPELE 2.2.2.7.1).

Terminal servers in remote-administration mode and xrdp answer every client this way, and
so does the front: it is not a terminal server, it only redirects.
"""

from __future__ import annotations

import struct

#: Basic security header flag (MS-RDPBCGR 2.2.8.1.1.2.1): a licensing PDU.
SEC_LICENSE_PKT = 0x0080
ERROR_ALERT = 0xFF
PREAMBLE_VERSION_3_0 = 0x03
STATUS_VALID_CLIENT = 0x00000007
ST_NO_TRANSITION = 0x00000002
BB_ERROR_BLOB = 0x0004


def valid_client_license() -> bytes:
    """The I/O-channel payload of a License Error PDU with STATUS_VALID_CLIENT: security
    header, licensing preamble (wMsgSize 16) and an empty error blob."""
    message = struct.pack("<IIHH", STATUS_VALID_CLIENT, ST_NO_TRANSITION, BB_ERROR_BLOB, 0)
    preamble = struct.pack("<BBH", ERROR_ALERT, PREAMBLE_VERSION_3_0, 4 + len(message))
    return struct.pack("<HH", SEC_LICENSE_PKT, 0) + preamble + message
