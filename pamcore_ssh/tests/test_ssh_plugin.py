"""pamcore-ssh: registration, launch string, and the identification probe against real sockets.

No ``sshd`` is assumed on the test machine, so the "SSH server" here is a tiny asyncio
server on 127.0.0.1 that sends a real-format identification line (RFC 4253 §4.2) — it is
a fake SSH server, not OpenSSH, and the tests say so in their names.
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from click.testing import CliRunner
from pamcore_ssh.hostkeys import PROXY_HOST_KEY, fingerprint, proxy_host_key
from pamcore_ssh.plugin import DEFAULT_PORT, client_launch
from pamcore_ssh.probe import probe_ssh
from sqlalchemy import func, select

from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.core import open_core
from pamcore.model import Activity, ActivitySession, AuditEvent, Resource, User
from pamcore.plugins import build_plugin_host

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def sends(payload: bytes, then_wait: float = 0.0) -> Handler:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(payload)
        await writer.drain()
        if then_wait:
            await asyncio.sleep(then_wait)
        writer.close()

    return handle


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await asyncio.sleep(5)
    writer.close()


def probe_against(handler: Handler, timeout: float = 2.0):  # type: ignore[no-untyped-def]
    async def scenario():  # type: ignore[no-untyped-def]
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            return await probe_ssh("127.0.0.1", port, timeout)
        finally:
            server.close()

    return asyncio.run(scenario())


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_registered_once_through_the_entry_point() -> None:
    host = build_plugin_host(strict=True)
    handler = host.hooks.protocols()["ssh"]
    assert handler.default_port == DEFAULT_PORT == 4422
    assert handler.listener_factory is not None  # the proxy listener (pamcore run, proxy)
    assert "ssh" in {i.name for i in host.plugin_infos()}


def test_pamcore_init_creates_the_proxy_host_key_once(tmp_path: Path) -> None:
    """The ``pamcore_init_instance`` hook: the key exists before the first connection, in
    the vault (never a file), and a second init keeps it."""
    instance = tmp_path / "instance"

    def init() -> str:
        result = CliRunner().invoke(
            build_cli(), ["--instance", str(instance), "--json", "init"], obj=CliContext(None)
        )
        assert result.exit_code == 0, result.output
        [line] = json.loads(result.stdout)["plugins"]["ssh"]["lines"]
        return line

    first, second = init(), init()
    again = CliRunner().invoke(
        build_cli(), ["--instance", str(instance), "ssh", "fingerprint"], obj=CliContext(None)
    )
    assert again.exit_code == 0, again.output

    core = open_core(instance)
    try:
        shown = fingerprint(proxy_host_key(core))
        with core.reader() as db:
            core.vault.named(db, PROXY_HOST_KEY)
            created = db.scalar(
                select(func.count())
                .select_from(AuditEvent)
                .where(AuditEvent.action == "ssh.host_key_created")
            )
    finally:
        core.dispose()
    assert first == second == f"proxy host key {shown}"
    assert f"sha256     {shown}" in again.output  # pamcore ssh fingerprint shows it again
    assert shown.startswith("SHA256:")
    assert created == 1
    assert not list(instance.glob("*host*key*"))


def test_launch_uses_directconnect_grammar_with_dashes_for_spaces() -> None:
    session = ActivitySession(activity=Activity(name="Linux Admin"))
    info = client_launch(
        session, Resource(name="web 01"), User(username="alice"), "pam.example", 4422
    )
    assert info.command == "ssh -p 4422 alice+Linux-Admin+web-01@pam.example"
    assert info.uri == "ssh://alice+Linux-Admin+web-01@pam.example:4422"


def test_probe_reads_identification_from_fake_ssh_server() -> None:
    # A banner line before the identification is allowed by RFC 4253 §4.2.
    result = probe_against(sends(b"Welcome\r\nSSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n", 0.2))
    assert result.ok, result.message
    assert result.details["software"] == "OpenSSH_9.6p1"
    assert "SSH-2.0-OpenSSH_9.6p1" in result.message


def test_probe_rejects_ssh1_only_server() -> None:
    result = probe_against(sends(b"SSH-1.5-ancient\r\n", 0.2))
    assert not result.ok
    assert "SSH-1.5 only" in result.message


def test_probe_says_when_the_server_is_not_ssh() -> None:
    result = probe_against(sends(b"HTTP/1.1 400 Bad Request\r\n\r\n"))
    assert not result.ok
    assert result.message.endswith("not as an SSH server (it sent 'HTTP/1.1 400 Bad Request')")


def test_probe_refused_port_message() -> None:
    port = closed_port()
    result = asyncio.run(probe_ssh("127.0.0.1", port, 2.0))
    assert not result.ok
    assert result.message == f"127.0.0.1:{port} refused the connection (is SSH running there?)"


def test_probe_times_out_on_a_silent_server_within_its_timeout() -> None:
    started = time.monotonic()
    result = probe_against(silent, timeout=0.3)
    assert time.monotonic() - started < 2.0
    assert not result.ok
    assert "within 0.3 s" in result.message


def test_add_action_refuses_a_missing_or_unknown_service_credential(tmp_path: Path) -> None:
    """``activities add-action`` checks a ``linux-*`` action's credentials at once (the
    action type's ``check``), not when the first session starts."""
    instance = tmp_path / "instance"

    def run(*args: str, code: int = 0, stdin: str | None = None) -> str:
        result = CliRunner().invoke(
            build_cli(), ["--instance", str(instance), *args], input=stdin, obj=CliContext(None)
        )
        assert result.exit_code == code, result.output
        assert "Traceback" not in result.output
        return result.output

    run("init")
    run("resources", "create", "web01", "--address", "127.0.0.1")
    run("activities", "create", "Linux Admin")
    add = ("activities", "add-action", "Linux Admin")
    missing = run(*add, "pre", "linux-create-account", code=2)
    assert "parameter 'service_credential' is missing" in missing
    service = '{"service_credential": "web01 root"}'
    unknown = run(*add, "post", "linux-remove-account", "--params", service, code=2)
    assert "'linux-remove-account': parameter 'service_credential': no credential" in unknown
    assert "web01 root" in unknown
    shown = json.loads(run("activities", "show", "Linux Admin", "--json"))
    assert shown["pre_actions"] == shown["post_actions"] == [], "refused actions are not added"
    credential = ("credentials", "create", "web01 root", "--username", "root")
    run(*credential, "--resource", "web01", "--password-stdin", stdin="Service-Pa55word-1\n")
    run(*add, "post", "linux-remove-account", "--params", service)
