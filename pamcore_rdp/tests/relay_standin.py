"""A stand-in for the listener's Phase B path, shared by the relay tests and
``bench/rdp_relay.py``: every connection to it is admitted into alice's session and
relayed, as the listener does once a redirect token redeems (admit, run, audit the
close)."""

from __future__ import annotations

import asyncio
import queue
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pamcore_rdp.certs import proxy_tls_context
from pamcore_rdp.pdu.wire import read_pdu
from pamcore_rdp.pdu.x224 import parse_connection_request
from pamcore_rdp.proxy.recording import recording_cap
from pamcore_rdp.proxy.relay import Relay, Timeouts
from pamcore_rdp.proxy.target import PROTOCOL, RdpTarget, rdp_target
from sqlalchemy import create_engine

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.model import Base, LoginMode, Platform, Role
from pamcore.plugins import build_plugin_host
from pamcore.proxy import Admitted, admit, close
from pamcore.services import scheduler
from pamcore.services.inventory import set_setting
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import T0, LoopThread, make_core
from pamcore.testing import builders as b

#: alice's pamcore password: xfreerdp sends it in the Client Info, the relay replaces it.
ALICE_PASSWORD = "Alice-Relay-Pw-77"
RESOURCE = "lab01"
#: Shorter steps than the product's, so a failing test fails sooner.
STEPS = Timeouts(step=8)


def make_instance(folder: Path) -> Pamcore:
    """SQLite, frozen clock, the installed plugins (the rdp settings are registered)."""
    url = f"sqlite:///{folder / 'relay.db'}"
    engine = create_engine(url)
    Base.metadata.create_all(engine)
    engine.dispose()
    instance = folder / "instance"
    instance.mkdir()
    return make_core(instance, url, FrozenClock(T0), build_plugin_host(strict=True))


Admit = Callable[[], Admitted[RdpTarget]]


def lab_session(
    core: Pamcore,
    port: int,
    account: str,
    password: str,
    mechanism: str = "negotiate",
    recording: bool = True,
) -> Admit:
    """alice's Available session on lab01 (127.0.0.1:``port``) with ``account``'s vaulted
    ``password``; returns how a connection is admitted into it (as the listener does)."""
    with core.unit() as db:
        alice = b.make_user(db, "alice", password=ALICE_PASSWORD)
        erin = b.make_user(db, "erin", Role.ADMIN)
        lab = b.make_resource(
            db,
            RESOURCE,
            protocols={"rdp": port},
            platform=Platform.WINDOWS,
            trust_on_first_use=True,
        )
        cred = b.make_credential(core, db, "lab01 account", account, password, resource=lab)
        activity = b.make_activity(db, "Desktop", login_mode=LoginMode.MANAGED, credential=cred)
        profile = b.make_profile(db, "desktop", max_duration_minutes=60, recording=recording)
        b.make_policy(db, "lab", profile, [activity], [lab], [alice])
        set_setting(core, db, erin, RESOURCE, "rdp", "nla_mechanism", mechanism)
        session_id = create_session(core, db, alice, SessionRequest("Desktop", (RESOURCE,))).id
        alice_id = alice.id
    scheduler.tick(core)
    return lambda: admit(
        core,
        PROTOCOL,
        alice_id,
        RESOURCE,
        peer="127.0.0.1",
        session_id=session_id,
        recording_cap=recording_cap(core.config),
        extra=rdp_target,
    )


@dataclass
class Finished:
    relay: Relay
    reason: str


class Proxy:
    """Admits and relays every connection on a loopback port, in a loop thread."""

    def __init__(self, core: Pamcore, admit: Admit, timeouts: Timeouts = STEPS) -> None:
        self.core = core
        self.admit = admit
        self.timeouts = timeouts
        self.tls = proxy_tls_context(core)
        self.loop = LoopThread()
        self.live: queue.Queue[Relay] = queue.Queue()
        self.finished: queue.Queue[Finished] = queue.Queue()
        self.server = self.loop.run(asyncio.start_server(self._accept, "127.0.0.1", 0))
        self.port = int(self.server.sockets[0].getsockname()[1])

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = parse_connection_request(await read_pdu(reader, 10))
        admitted = await asyncio.to_thread(self.admit)
        relay = Relay(
            self.core, admitted, reader, writer, request, self.tls, timeouts=self.timeouts
        )
        self.live.put(relay)
        reason = await relay.run()
        await close(self.core, admitted, reason)
        self.finished.put(Finished(relay, reason))

    def client_args(self) -> list[str]:
        return [f"/v:127.0.0.1:{self.port}", "/u:alice", f"/p:{ALICE_PASSWORD}", "/size:1024x768"]

    def close(self) -> None:
        self.server.close()
        self.loop.close()
