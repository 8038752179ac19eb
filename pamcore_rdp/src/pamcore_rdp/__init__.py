"""pamcore-rdp: the RDP protocol for pamcore.

A DirectConnect proxy for native RDP clients: ``.rdp`` files with one-time routing tokens,
the inline password prompt and redirection, credential injection over CredSSP or TLS,
session-end enforcement and PDU-log recording; plus the RDP probe and the proxy
certificate that ``pamcore init`` prepares.

Layout: :mod:`pamcore_rdp.pdu` holds the pure codecs (wire, x224, mcs, gcc, share,
activation, clientinfo, keys, license, redirection, paint, prompt and their error), which
import nothing of pamcore; :mod:`pamcore_rdp.proxy` holds the proxy on the core's proxy kit
(:mod:`pamcore.proxy`): listener, front and gate, the client leg they share with the relay,
relay, target, credssp, trust, redirect_tokens, banner, session_end, recording; the top
level keeps what the core calls directly (plugin, cli, web, probe, settings, certs,
rdpfile).
"""

__version__ = "0.1.0"
