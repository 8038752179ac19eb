"""pamcore-rdp: the RDP protocol for pamcore.

A DirectConnect proxy for native RDP clients: ``.rdp`` files with one-time routing tokens,
the inline password prompt and redirection, credential injection over CredSSP or TLS,
session-end enforcement and PDU-log recording; plus the RDP probe and the proxy
certificate that ``pamcore init`` prepares.
"""

__version__ = "0.1.0"
