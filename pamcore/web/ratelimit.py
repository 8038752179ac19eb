"""A small per-address limiter for failed sign-ins, on top of the core's per-account
lockout: it slows down one address trying many usernames, which the lockout cannot see."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class AttemptLimiter:
    """At most ``limit`` failed attempts per key within ``window`` seconds (a sliding
    window). Successes are not counted, so people behind one address who sign in
    correctly never lock each other out; a key with no failure inside the window is
    forgotten, so the store holds only addresses that failed recently."""

    def __init__(
        self, limit: int = 20, window: float = 300.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.window = window
        self._clock = clock  # monotonic: only elapsed time matters, never shown to anyone
        self._failures: dict[str, deque[float]] = {}
        self._swept = clock()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many keys are remembered (after forgetting the idle ones)."""
        with self._lock:
            self._sweep(self._clock(), force=True)
            return len(self._failures)

    def retry_after(self, key: str) -> int:
        """0 when ``key`` may try now, else the seconds until it may."""
        now = self._clock()
        with self._lock:
            self._sweep(now)
            hits = self._recent(key, now)
            if len(hits) < self.limit:
                return 0
            return int(hits[0] + self.window - now) + 1

    def failed(self, key: str) -> None:
        """Count one failed attempt by ``key``."""
        now = self._clock()
        with self._lock:
            self._recent(key, now).append(now)

    def _recent(self, key: str, now: float) -> deque[float]:
        hits = self._failures.setdefault(key, deque())
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        return hits

    def _sweep(self, now: float, force: bool = False) -> None:
        """Once a window (or when asked), drop every key whose failures all expired."""
        if not force and now - self._swept < self.window:
            return
        self._swept = now
        for key in [
            k for k, hits in self._failures.items() if not hits or hits[-1] <= now - self.window
        ]:
            del self._failures[key]
