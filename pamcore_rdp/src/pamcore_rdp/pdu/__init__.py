"""The RDP codecs: parse and encode the PDUs the proxy reads and writes (MS-RDPBCGR), and
paint the cards it shows. Pure functions of bytes and images: nothing here imports pamcore
or the proxy, and a malformed PDU raises :class:`~pamcore_rdp.pdu.errors.RdpProtocolError`.
"""
