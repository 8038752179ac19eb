"""pamcore-ssh: the SSH protocol for pamcore — the DirectConnect proxy (credential
injection, host-key pinning, session-end enforcement), launch strings and a probe."""

__version__ = "0.1.0"
