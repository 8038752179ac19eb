"""The one error every RDP parser raises on malformed input.

A listener catches it, logs the message and closes the connection: the message names the
PDU, the field and what was expected, and never contains a secret (a password is never
quoted; lengths and offsets are). It is not a :class:`pamcore.errors.ProtocolError`: the
codecs import nothing of pamcore, so the proxy's handlers name both.
"""

from __future__ import annotations


class RdpProtocolError(ValueError):
    """A peer sent bytes that do not form the RDP PDU we expected."""
