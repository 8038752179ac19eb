"""The RDP proxy: the listener, Phase A (the front and its gate), Phase B (the relay and
its target leg, CredSSP and certificate trust), the client leg they share, redirect
tokens, the session-end banner and the PDU-log recording. Built on the codecs in
:mod:`pamcore_rdp.pdu` and the core's services.
"""
