"""pamcore-tcp-tunnel: a plain TCP tunnel through pamcore, for database clients and the like.

A copy-me example of a complete protocol plugin: listener, client launch string,
connection test, and the protocol contract suite in its tests.
"""

__version__ = "0.1.0"
