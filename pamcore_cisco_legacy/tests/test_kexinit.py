"""The KEXINIT probe (RFC 4253 §7.1) and the handshake hint built on it: the parser on
crafted and broken packets, and the probe against a real OpenSSH ``sshd`` offering only
legacy algorithms."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path

import pytest
from cisco_peers import LegacySshd
from pamcore_cisco_legacy.kexinit import KexinitError, parse_kexinit, probe_kexinit
from pamcore_ssh.hooks import ssh_handshake_hint

from pamcore.config import Config
from pamcore.model import Resource, ResourceProtocol
from pamcore.plugins import build_plugin_host
from pamcore.testing.sshd import free_port

CONFIG = Config(Path("instance"), "sqlite://", Path("master.key"))


def _kexinit(*lists: str, cookie: bytes = b"\x00" * 16) -> bytes:
    body = b"".join(struct.pack(">I", len(n)) + n.encode() for n in lists)
    return bytes([20]) + cookie + body + b"\x00" + struct.pack(">I", 0)


TEN = (
    "diffie-hellman-group1-sha1,kex-strict-s-v00@openssh.com,ext-info-s",
    "ssh-rsa",
    "aes128-cbc,3des-cbc",
    "aes128-cbc,aes256-cbc",
    "hmac-sha1",
    "hmac-sha1",
    "none",
    "none",
    "",
    "",
)


def test_parser_strips_pseudo_algorithms_and_merges_directions() -> None:
    offer = parse_kexinit(_kexinit(*TEN), "SSH-2.0-Cisco-1.25")
    assert offer.banner == "SSH-2.0-Cisco-1.25"
    assert offer.kex == ["diffie-hellman-group1-sha1"]
    assert offer.host_key == ["ssh-rsa"]
    assert offer.ciphers == ["aes128-cbc", "3des-cbc", "aes256-cbc"]
    assert offer.macs == ["hmac-sha1"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "expected SSH_MSG_KEXINIT"),
        (bytes([21]) + b"\x00" * 40, "got 21"),
        (_kexinit(*TEN)[:30], "truncated"),
        (_kexinit(*TEN[:9])[:-5], "truncated"),  # a name-list short
        (bytes([20]) + b"\x00" * 16 + struct.pack(">I", 1000) + b"abc", "truncated"),
        (_kexinit("\u00e9", *TEN[1:]), "non-ASCII"),
    ],
)
def test_parser_refuses_truncated_and_malformed_packets(payload: bytes, message: str) -> None:
    with pytest.raises(KexinitError, match=message):
        parse_kexinit(payload)


async def _serve_once(greeting: bytes) -> int:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()  # the probe's identification, so closing sends no RST
        writer.write(greeting)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    return int(server.sockets[0].getsockname()[1])


@pytest.mark.parametrize(
    ("greeting", "message"),
    [
        (b"", "before its banner"),
        (b"SSH-2.0-x\r\n" + struct.pack(">IB", 10**9, 4), "implausible packet length"),
        (b"SSH-2.0-x\r\n" + struct.pack(">IB", 100, 4) + b"\x14", "cut short"),
    ],
)
def test_probe_refuses_a_broken_greeting(greeting: bytes, message: str) -> None:
    async def go() -> None:
        port = await _serve_once(greeting)
        await probe_kexinit("127.0.0.1", port, 5)

    with pytest.raises(KexinitError, match=message):
        asyncio.run(go())


def _resource(name: str, port: int, profile: str = "off") -> Resource:
    return Resource(
        name=name,
        address="127.0.0.1",
        settings={"cisco_legacy": {"legacy_algorithms": profile}},
        protocols=[ResourceProtocol(name="ssh", port=port)],
    )


def test_probe_reads_the_legacy_offer_of_a_real_sshd(legacy_sshd: LegacySshd) -> None:
    offer = asyncio.run(probe_kexinit("127.0.0.1", legacy_sshd.port, 5))
    assert offer.banner.startswith("SSH-2.0-OpenSSH")
    assert offer.kex == ["diffie-hellman-group1-sha1"]  # kex-strict-s-v00@openssh.com stripped
    assert offer.ciphers == ["aes128-cbc", "3des-cbc"]
    assert offer.macs == ["hmac-sha1"]
    assert offer.host_key == ["ssh-rsa", "ssh-dss"]


def test_hint_names_both_offers_and_the_command(legacy_sshd: LegacySshd) -> None:
    hooks = build_plugin_host(strict=True).hooks
    hint = ssh_handshake_hint(
        hooks, _resource("core sw", legacy_sshd.port), "Connection lost", CONFIG
    )
    assert hint is not None
    first, second = hint.splitlines()
    assert "no common algorithm for key exchange with core sw" in first
    assert "client offered: [mlkem768x25519-sha256 " in first
    assert "server offered: [diffie-hellman-group1-sha1]" in first
    assert second.endswith(
        "pamcore resources set-setting 'core sw' cisco_legacy.legacy_algorithms cisco-legacy"
    )


def test_hint_from_a_running_loop_probes_in_a_worker_thread(legacy_sshd: LegacySshd) -> None:
    hooks = build_plugin_host(strict=True).hooks

    async def from_the_loop() -> str | None:
        return ssh_handshake_hint(
            hooks, _resource("sw01", legacy_sshd.port), "Connection lost", CONFIG
        )

    hint = asyncio.run(from_the_loop())
    assert hint is not None
    assert "server offered: [diffie-hellman-group1-sha1]" in hint


def test_no_hint_once_the_profile_covers_the_server(legacy_sshd: LegacySshd) -> None:
    hooks = build_plugin_host(strict=True).hooks
    opted = _resource("sw01", legacy_sshd.port, "cisco-legacy")
    assert ssh_handshake_hint(hooks, opted, "Connection lost", CONFIG) is None


def test_closed_port_falls_back_to_the_text_hint() -> None:
    hooks = build_plugin_host(strict=True).hooks
    error = "No matching key exchange algorithm found, sent x and received y"
    hint = ssh_handshake_hint(hooks, _resource("sw01", free_port()), error, CONFIG)
    assert hint is not None
    assert "client offered" not in hint
    assert "may only offer legacy SSH algorithms" in hint
    assert "pamcore resources set-setting sw01 cisco_legacy.legacy_algorithms cisco-legacy" in hint
