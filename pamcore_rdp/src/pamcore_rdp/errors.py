"""The one error every RDP parser raises on malformed input.

A listener catches it, logs the message and closes the connection: the message names the
PDU, the field and what was expected, and never contains a secret (a password is never
quoted; lengths and offsets are).
"""

from __future__ import annotations

from pamcore.errors import ProtocolError


class RdpProtocolError(ProtocolError, ValueError):
    """A peer sent bytes that do not form the RDP PDU we expected."""
