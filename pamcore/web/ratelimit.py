"""A small per-address limiter for sign-in attempts, on top of the core's per-account
lockout: it slows down one address trying many usernames, which the lockout cannot see."""

from __future__ import annotations

import threading
import time
from collections import deque


class AttemptLimiter:
    """At most ``limit`` attempts per key within ``window`` seconds (sliding window)."""

    def __init__(self, limit: int = 20, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def retry_after(self, key: str) -> int:
        """Record an attempt by ``key``; 0 when allowed, else seconds until one is."""
        now = time.monotonic()
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                return int(hits[0] + self.window - now) + 1
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle addresses; memory stays bounded
                for stale in [k for k, v in self._hits.items() if not v]:
                    del self._hits[stale]
            return 0
