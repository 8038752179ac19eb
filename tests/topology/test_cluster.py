"""The topology of docs/deploy.md as separate processes on one PostgreSQL: two proxy nodes,
two workers and the dashboard (see :mod:`tests.topology.cluster`). Each test tells one thing
an operator relies on when pamcore runs on several nodes."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator

import pexpect
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from pamcore.demo_target import load_target
from pamcore.model import AuditEvent, LiveConnection, User
from pamcore.openssh import sshd_missing
from pamcore.services.terminal_tokens import instance_secret, issue_terminal_token
from pamcore.testing import require_pg_admin_url
from tests.topology.cluster import (
    HEARTBEAT_TIMEOUT,
    Cluster,
    Node,
    pamcore,
    port_open,
    running_cluster,
)

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    admin = require_pg_admin_url()
    if missing := sshd_missing():
        pytest.skip(f"the demo SSH target {missing}")
    with running_cluster(tmp_path_factory.mktemp("cluster"), admin) as running:
        assert load_target(running.a.instance) is not None, "the demo target needs root"
        yield running


def closed_within(children: list[pexpect.spawn], seconds: float) -> float:
    """Seconds until every client's connection closed (fails after ``seconds``)."""
    started = time.monotonic()
    for child in children:
        left = max(seconds - (time.monotonic() - started), 0.1)
        child.expect(pexpect.EOF, timeout=left)
    return time.monotonic() - started


def test_ending_a_session_closes_its_connections_on_both_nodes(cluster: Cluster) -> None:
    """alice works through proxy a and proxy b at once; she ends the session with the
    dashboard's REST API on the web process; both proxies close her connections, telling
    her why, within 2 s."""
    session_id = cluster.available_session()
    on_a, on_b = cluster.shell(cluster.a), cluster.shell(cluster.b)
    token = cluster.api_token("alice")
    cluster.api(token, "POST", f"/sessions/{session_id}/end", {})
    took = closed_within([on_a, on_b], 2.0)
    for child in (on_a, on_b):
        assert "the session was ended" in (child.before or "")
    assert took < 2.0
    cluster.wait_for(lambda: cluster.status(session_id) == "ended", "Ended", 60)


def test_vault_rotation_while_every_node_runs(cluster: Cluster) -> None:
    """``pamcore vault rotate-key`` while both nodes serve: the next session's account is
    made by a worker and its password injected by proxy b, and the password reveal works,
    with no process restarted."""
    rotated = pamcore(cluster.a.instance, "vault", "rotate-key", "--yes")
    assert "master key rotated to" in rotated, rotated
    session_id = cluster.available_session()
    shell = cluster.shell(cluster.b)
    shell.sendline("id -un")
    shell.expect(r"pamdemo-alice-[0-9a-f]{6}")
    shell.sendline("exit")
    shell.expect(pexpect.EOF)
    revealed = json.loads(
        pamcore(
            cluster.a.instance, "--json", "sessions", "password", str(session_id), "--as", "alice"
        )
    )
    assert len(revealed["password"]) >= 16
    status = json.loads(pamcore(cluster.a.instance, "--json", "vault", "status"))
    assert status["undecryptable"] == []
    pamcore(cluster.a.instance, "sessions", "end", str(session_id), "--as", "alice")


def test_a_terminal_token_opens_a_shell_through_one_node_only(cluster: Cluster) -> None:
    """The dashboard's browser-terminal token, taken by proxy a, is refused by proxy b with
    the sentence a second use gets: it was spent in the database, not in a's memory."""
    session_id = cluster.available_session()
    core = cluster.core()
    try:
        secret = instance_secret(core)
        assert secret is not None
        with core.reader() as db:
            alice = db.scalars(select(User).where(User.username == "alice")).one()
            token = issue_terminal_token(core, db, alice, session_id, "web01", "ssh", secret)
    finally:
        core.dispose()

    async def page(node: Node) -> tuple[str, int | None]:
        """What the page shows first, and the close code when the proxy closed it."""
        url = f"ws://127.0.0.1:{node.terminal_port}"
        async with connect(url, origin=f"http://localhost:{cluster.web_port}") as ws:  # type: ignore[arg-type]
            await ws.send(json.dumps({"type": "auth", "token": token, "cols": 80, "rows": 24}))
            shown = await asyncio.wait_for(ws.recv(), 30)
            try:
                await asyncio.wait_for(ws.recv(), 2)
            except ConnectionClosed as closed:
                return str(shown), closed.rcvd.code if closed.rcvd else None
            except TimeoutError:
                pass
            return str(shown), None

    shown, closed = asyncio.run(page(cluster.a))
    assert closed is None and "already used" not in shown, shown
    shown, closed = asyncio.run(page(cluster.b))
    assert closed == 1008
    assert "the terminal token was already used" in shown, shown
    pamcore(cluster.a.instance, "sessions", "end", str(session_id), "--as", "alice")


def live_ssh(scrape: str) -> dict[str, float]:
    """``pamcore_live_connections{protocol="ssh"}`` of one scrape, by node."""
    return {
        sample.labels["node"]: sample.value
        for family in text_string_to_metric_families(scrape)
        for sample in family.samples
        if sample.name == "pamcore_live_connections" and sample.labels["protocol"] == "ssh"
    }


def test_metrics_show_each_nodes_live_connections(cluster: Cluster) -> None:
    """A shell through each proxy: any process's /metrics (here proxy a's and worker b's,
    each on its own ``--metrics-port``) counts one more live SSH connection on two nodes."""
    before = live_ssh(cluster.scrape(cluster.a.proxy_metrics))
    session_id = cluster.available_session()
    shells = [cluster.shell(cluster.a), cluster.shell(cluster.b)]
    for port in (cluster.a.proxy_metrics, cluster.b.worker_metrics):
        during = live_ssh(cluster.scrape(port))
        grown = {node for node, n in during.items() if n == before.get(node, 0) + 1}
        assert len(grown) == 2, (before, during)
    assert json.loads(cluster.scrape(cluster.b.proxy_metrics, "/readyz")) == {"status": "ready"}
    for shell in shells:
        shell.sendline("exit")
        shell.expect(pexpect.EOF)
    pamcore(cluster.a.instance, "sessions", "end", str(session_id), "--as", "alice")


def test_a_killed_proxy_nodes_connections_are_closed_and_audited(cluster: Cluster) -> None:
    """``kill -9`` of proxy b with alice's shell open through it: after the heartbeat
    timeout another process marks the connection closed, audited once with the reason, and
    the session is connectable again (through proxy a)."""
    session_id = cluster.available_session()
    shell = cluster.shell(cluster.b)
    core = cluster.core()
    try:
        with core.reader() as db:
            (connection,) = db.scalars(
                select(LiveConnection.id).where(
                    LiveConnection.session_id == session_id, LiveConnection.closed_at.is_(None)
                )
            ).all()
        cluster.kill("proxy-b")
        shell.expect(pexpect.EOF, timeout=10)

        def closed_events() -> list[dict[str, object]]:
            with core.reader() as db:
                return [
                    dict(details)
                    for details in db.scalars(
                        select(AuditEvent.details).where(
                            AuditEvent.action == "connection.closed",
                            AuditEvent.session_id == session_id,
                        )
                    )
                ]

        cluster.wait_for(closed_events, "connection.closed", HEARTBEAT_TIMEOUT + 20)
        (closed,) = closed_events()
        assert closed["connection"] == connection
        assert "stopped answering" in str(closed["reason"])
        with core.reader() as db:
            assert db.get(LiveConnection, connection).closed_at is not None
        again = cluster.shell(cluster.a)  # the session is usable through the other node
        again.sendline("exit")
        again.expect(pexpect.EOF)
    finally:
        core.dispose()
        cluster.start_proxy(cluster.b)
        cluster.wait_for(lambda: port_open(cluster.b.ssh_port), "proxy b again", 60)
    pamcore(cluster.a.instance, "sessions", "end", str(session_id), "--as", "alice")
