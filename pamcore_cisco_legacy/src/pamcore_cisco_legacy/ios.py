"""Cisco IOS over SSH as an administrator drives it: an interactive shell, prompts, ``enable``,
configuration mode, and IOS's ``%`` error lines. IOS runs at most one command per exec
channel and configuration needs a terminal, so :mod:`pamcore_ssh.actions`' ``Remote.run``
does not fit; the connection itself (host key, legacy algorithms, keyboard-interactive
login) is the SSH plugin's.

Secrets reach the device only as typed input; they are never in an error message.
"""

from __future__ import annotations

import asyncio
import re

import asyncssh

from pamcore.errors import ActionFailed

#: ``Router>``, ``Router#``, ``Router(config)#`` at the end of what the device printed.
PROMPT = re.compile(rb"(?:^|[\r\n])[A-Za-z0-9._-]+(?:\([a-z-]+\))?([>#]) ?$")
PASSWORD = re.compile(rb"Password: ?$")
#: IOS reports a refused command on a line of its own starting with ``%``.
ERROR = re.compile(rb"^% ?(.+?)\r?$", re.MULTILINE)
#: Seconds one step (a prompt after a command) may take.
STEP_TIMEOUT = 20.0
_NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")


def checked_username(name: str) -> str:
    """An IOS local user name: no spaces or characters the CLI would parse."""
    if not _NAME.fullmatch(name):
        raise ActionFailed(f"'{name}' is not a valid IOS user name")
    return name


class IosShell:
    """One interactive IOS session on an authenticated connection."""

    def __init__(self, process: asyncssh.SSHClientProcess[bytes], where: str) -> None:
        self._process = process
        self.where = where
        self.prompt = b""
        #: Secrets typed in this session, masked in any message.
        self._secrets: list[str] = []

    @classmethod
    async def open(cls, conn: asyncssh.SSHClientConnection, where: str) -> IosShell:
        try:
            process = await conn.create_process(term_type="vt100", encoding=None)
        except (asyncssh.Error, OSError) as exc:
            raise ActionFailed(f"{where} refused a shell: {exc}") from None
        shell = cls(process, where)
        await shell._until(PROMPT, "waiting for the prompt")
        return shell

    def close(self) -> None:
        self._process.close()

    async def _until(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        """Read until ``pattern`` matches the end of the output; fails on timeout or EOF."""
        seen = b""
        try:
            async with asyncio.timeout(STEP_TIMEOUT):
                while not (match := pattern.search(seen)):
                    chunk = await self._process.stdout.read(4096)
                    if not chunk:
                        raise ActionFailed(f"{what} on {self.where}: the device closed the session")
                    seen += chunk
        except TimeoutError:
            raise ActionFailed(
                f"{what} on {self.where}: no answer in {STEP_TIMEOUT:.0f} s"
            ) from None
        if pattern is PROMPT:
            self.prompt = match.group(1)
        return seen

    def _type(self, line: str) -> None:
        self._process.stdin.write(line.encode() + b"\r")

    async def command(self, line: str, what: str, secret: str = "") -> bytes:
        """Type ``line`` and wait for the prompt; an IOS ``%`` line fails the step.
        ``secret``: a part of ``line`` to keep out of messages."""
        if secret:
            self._secrets.append(secret)
        self._type(line)
        output = await self._until(PROMPT, what)
        if error := ERROR.search(output):
            raise ActionFailed(f"{what} failed on {self.where}: {self._masked(error.group(1))}")
        return output

    async def privileged(self, enable_secret: str | None) -> None:
        """Reach the ``#`` prompt, typing the enable secret if the device asks."""
        if self.prompt == b"#":
            return
        if not enable_secret:
            raise ActionFailed(
                f"{self.where} needs the enable secret: name its credential in the "
                f"resource setting cisco_legacy.enable_credential"
            )
        self._type("enable")
        await self._until(PASSWORD, "asking for privileged mode")
        self._secrets.append(enable_secret)
        self._type(enable_secret)
        await self._until(PROMPT, "entering privileged mode")
        if self.prompt != b"#":
            raise ActionFailed(f"{self.where} refused the enable secret")

    def _masked(self, raw: bytes) -> str:
        text = raw.decode("utf-8", "replace").strip()
        for secret in self._secrets:
            text = text.replace(secret, "********")
        return text[:200]


async def set_user_secret(
    conn: asyncssh.SSHClientConnection,
    where: str,
    user: str,
    secret: str,
    enable_secret: str | None,
) -> None:
    """``username USER secret SECRET`` in configuration mode, then ``write memory`` so the
    new secret survives a reload."""
    shell = await IosShell.open(conn, where)
    try:
        await shell.privileged(enable_secret)
        await shell.command("configure terminal", "entering configuration mode")
        await shell.command(
            f"username {user} secret {secret}", f"setting the secret of {user}", secret=secret
        )
        await shell.command("end", "leaving configuration mode")
        await shell.command("write memory", "saving the configuration")
    finally:
        shell.close()
