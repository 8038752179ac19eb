"""The process runtime of ``pamcore run`` and ``pamcore worker``: services started together
on one asyncio loop, stopped together on SIGINT/SIGTERM.

A service is anything with ``name``, ``async start() -> str`` and ``async stop()``: the
scheduler loop and each protocol's proxy listener today; the web dashboard joins as one more
(a WSGI server in a thread behind the same two methods). A service that fails to start is
logged and reported, and the others keep running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy.exc import SQLAlchemyError

from pamcore.core import Pamcore
from pamcore.health import ServiceStates
from pamcore.registry import Listener
from pamcore.services.connections import close_silent_nodes
from pamcore.services.scheduler import TickReport, tick

log = logging.getLogger(__name__)

#: How long a stop waits for a tick in progress before giving up on it.
STOP_GRACE_SECONDS = 30.0


# -- the scheduler, shared by `pamcore worker` and `pamcore run` ---------------------------


def describe_tick(report: TickReport) -> str:
    """One line naming the sessions a tick moved, e.g. ``activated 3, 4; expired 1``."""
    parts = [
        f"{label} {', '.join(str(i) for i in ids)}"
        for label, ids in (
            ("activated", report.activated),
            ("expired", report.expired),
            ("failed", report.failed),
            ("escalated", report.escalated),
            ("missed", report.missed),
        )
        if ids
    ]
    return "; ".join(parts) or "nothing due"


def run_tick(core: Pamcore) -> TickReport | None:
    """One scheduler tick that never raises: a failing tick (database down, a plugin bug) is
    logged and the next interval retries, because a dead scheduler strands every session."""
    try:
        report = tick(core)
    except SQLAlchemyError as exc:
        # The driver's message only: SQLAlchemy's own text may include bound parameters.
        log.error(
            "scheduler tick failed: database error %s: %s; retrying next interval",
            type(exc).__name__,
            getattr(exc, "orig", None) or "see the database log",
        )
        return None
    except Exception:
        log.exception("scheduler tick failed; retrying next interval")
        return None
    if report.busy:
        log.info("scheduler tick: %s", describe_tick(report))
    return report


def sweep_silent_nodes(core: Pamcore) -> None:
    """Close the connections of proxy nodes that stopped answering, from the worker too: an
    instance whose only proxy node died has no other watch to do it. Never raises (logged;
    the next interval retries)."""
    try:
        closed = close_silent_nodes(core)
    except SQLAlchemyError as exc:
        # One line, as the tick's: the database being down is already said there.
        log.error("sweeping silent proxy nodes failed: database error %s", type(exc).__name__)
        return
    except Exception:
        log.exception("sweeping silent proxy nodes failed; retrying next interval")
        return
    if closed:
        log.info("closed %s connection(s) of proxy nodes that stopped answering", closed)


class Service(Protocol):
    """What the runtime starts and stops."""

    name: str

    async def start(self) -> str:
        """Start; returns where or how it runs (shown to the operator)."""
        ...

    async def stop(self) -> None: ...


class SchedulerService:
    """The scheduler loop: a tick in a worker thread (the services are synchronous) and
    the sweep of silent proxy nodes, then a pause of ``interval`` seconds or until
    stopped."""

    name = "scheduler"

    def __init__(
        self,
        core: Pamcore,
        interval: float,
        on_tick: Callable[[TickReport], None] | None = None,
    ) -> None:
        self.core = core
        self.interval = interval
        self.on_tick = on_tick
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self._task = asyncio.create_task(self._loop(), name="pamcore-scheduler")
        return f"every {self.interval:g}s"

    async def _loop(self) -> None:
        while not self._stopping.is_set():
            report = await asyncio.to_thread(run_tick, self.core)
            await asyncio.to_thread(sweep_silent_nodes, self.core)
            if report is not None and report.busy and self.on_tick is not None:
                self.on_tick(report)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), timeout=self.interval)

    async def stop(self) -> None:
        """Let a tick in progress finish (its transaction commits or rolls back whole)."""
        self._stopping.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(self._task, timeout=STOP_GRACE_SECONDS)
            except TimeoutError:
                log.warning("the scheduler tick did not finish within %ss", STOP_GRACE_SECONDS)


class ListenerService:
    """A protocol plugin's proxy listener (see :class:`pamcore.registry.ProtocolHandler`)."""

    def __init__(
        self,
        protocol: str,
        factory: Callable[[Pamcore, str, int], Listener],
        core: Pamcore,
        host: str,
        port: int,
    ) -> None:
        self.name = f"{protocol} listener"
        self._factory = factory
        self._core = core
        self._host = host
        self._port = port
        self._listener: Listener | None = None

    async def start(self) -> str:
        listener = self._factory(self._core, self._host, self._port)
        await listener.start()
        self._listener = listener
        return f"{self._host}:{listener.port}"

    async def stop(self) -> None:
        if self._listener is not None:
            await self._listener.stop()


def proxy_services(core: Pamcore) -> list[Service]:
    """A listener for every installed protocol that brings one, on its configured port."""
    bind = core.config.proxy_bind
    services: list[Service] = []
    for name, handler in sorted(core.hooks.protocols().items()):
        if handler.listener_factory is None:
            log.debug("protocol %s has no proxy listener", name)
            continue
        services.append(
            ListenerService(name, handler.listener_factory, core, bind, handler.port(core.config))
        )
    return services


# -- the runtime ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Started:
    """The outcome of starting one service, for the operator."""

    name: str
    ok: bool
    detail: str


class Runtime:
    """Starts services in order, runs until asked to stop, stops them in reverse order;
    ``states`` follows them for ``/readyz``."""

    def __init__(self, services: list[Service], states: ServiceStates | None = None) -> None:
        self.services = services
        self.states = ServiceStates() if states is None else states
        self._running: list[Service] = []
        self._stop: asyncio.Event | None = None

    async def start(self) -> list[Started]:
        for service in self.services:
            self.states.expect(service.name)
        results = []
        for service in self.services:
            try:
                detail = await service.start()
            except Exception as exc:
                log.error("%s did not start: %s", service.name, exc)
                reason = str(exc) or type(exc).__name__
                self.states.failed(service.name, reason)
                results.append(Started(service.name, False, reason))
                continue
            log.info("%s started (%s)", service.name, detail)
            self.states.started(service.name)
            self._running.append(service)
            results.append(Started(service.name, True, detail))
        return results

    async def stop(self) -> None:
        while self._running:
            service = self._running.pop()
            self.states.stopping(service.name)
            try:
                await service.stop()
            except Exception:
                log.exception("%s did not stop cleanly", service.name)
            else:
                log.info("%s stopped", service.name)

    def request_stop(self) -> None:
        if self._stop is not None:
            self._stop.set()

    async def serve(
        self,
        duration: float | None = None,
        on_started: Callable[[list[Started]], None] | None = None,
    ) -> list[Started]:
        """Start, wait for :meth:`request_stop` (or ``duration`` seconds), then stop."""
        self._stop = asyncio.Event()
        restore = _install_signal_handlers(asyncio.get_running_loop(), self.request_stop)
        try:
            results = await self.start()
            if on_started is not None:
                on_started(results)
            if self._running:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), timeout=duration)
            return results
        finally:
            await self.stop()
            restore()


def _install_signal_handlers(
    loop: asyncio.AbstractEventLoop, stop: Callable[[], None]
) -> Callable[[], None]:
    """SIGINT and SIGTERM ask for a clean stop (only possible in the main thread); returns
    the function that removes the handlers again."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, stop)

    def restore() -> None:
        for sig in signals:
            loop.remove_signal_handler(sig)

    return restore


def run_services(
    services: list[Service],
    duration: float | None = None,
    on_started: Callable[[list[Started]], None] | None = None,
    states: ServiceStates | None = None,
) -> list[Started]:
    """Run ``services`` on a fresh event loop until SIGINT/SIGTERM or ``duration``;
    ``states`` is what the process's ``/readyz`` reads."""
    return asyncio.run(Runtime(services, states).serve(duration, on_started))
