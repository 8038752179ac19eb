"""Typed calls of the SSH plugin's hooks (:mod:`pamcore_ssh.hookspecs`), combining the
answers as each spec says; the plugin never calls ``hooks.relay`` directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pluggy

from pamcore.errors import ConfigurationError
from pamcore_ssh.hookspecs import SSH_ALGORITHM_KINDS, TerminalAssistant

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from pamcore.config import Config
    from pamcore.core import Pamcore
    from pamcore.model import ActivitySession, Resource


class Hooks(Protocol):
    """What of the core's ``core.hooks`` these calls need."""

    @property
    def relay(self) -> pluggy.HookRelay: ...


def ssh_algorithms(hooks: Hooks, resource: Resource, config: Config) -> dict[str, list[str]]:
    """Every plugin's extra algorithms by kind; an unknown kind is a ConfigurationError."""
    merged: dict[str, list[str]] = {}
    # pluggy returns results in call order; appending keeps the first plugin's preferred.
    for answer in hooks.relay.pamcore_ssh_algorithms(resource=resource, config=config):
        for kind, names in answer.items():
            if kind not in SSH_ALGORITHM_KINDS:
                raise ConfigurationError(
                    f"unknown SSH algorithm kind '{kind}' (expected one of "
                    f"{', '.join(SSH_ALGORITHM_KINDS)})"
                )
            bucket = merged.setdefault(kind, [])
            bucket.extend(n for n in names if n not in bucket)
    return merged


def ssh_handshake_hint(hooks: Hooks, resource: Resource, error: str, config: Config) -> str | None:
    return hooks.relay.pamcore_ssh_handshake_hint(resource=resource, error=error, config=config)


def ssh_terminal_assistants(
    hooks: Hooks, core: Pamcore, db: Session, session: ActivitySession, resource: Resource
) -> list[Callable[[], TerminalAssistant]]:
    return hooks.relay.pamcore_ssh_terminal_assistant(
        core=core, db=db, session=session, resource=resource
    )
