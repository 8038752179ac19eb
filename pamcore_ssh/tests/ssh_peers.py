"""What the SSH plugin's tests name from their peers (the fixtures that start them are in
conftest.py): a module of its own, since several test folders have a ``conftest``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pamcore.testing import LoopThread


@dataclass
class EchoTarget:
    address: tuple[str, int]
    host_key_line: str


@dataclass
class Sshd:
    port: int
    client_key: Path
    host_key_line: str
    other_host_key_line: str


def run_listener(loop: LoopThread, listener: Any) -> int:
    loop.run(listener.start())
    return int(listener.port)
