"""pamcore-rdp: the RDP protocol for pamcore (``.rdp`` files for DirectConnect, RDP probe).

The DirectConnect RDP proxy arrives in a later release; until then the plugin registers
the protocol without a listener, so the dashboard offers the ``.rdp`` file and admins can
test a resource's RDP port.
"""

__version__ = "0.1.0"
