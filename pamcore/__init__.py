"""pamcore: privileged access management for approved, time-boxed, audited activity sessions."""

import pluggy

__version__ = "0.1.0"

#: Decorator plugins use to implement a hook: ``@pamcore.hookimpl``.
hookimpl = pluggy.HookimplMarker("pamcore")

__all__ = ["__version__", "hookimpl"]
