"""pamcore-ssh: the SSH protocol for pamcore (DirectConnect launch strings, reachability probe).

The SSH proxy listener itself arrives in a later release; until then the plugin registers
the protocol without a listener, so the dashboard shows how to connect and admins can
test a resource's SSH port.
"""

__version__ = "0.1.0"
