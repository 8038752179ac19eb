"""The SSH plugin's own hooks, for plugins that adapt its outgoing connections (legacy
algorithms, handshake hints, terminal helpers); added to the host by ``pamcore_addhooks``.

Their names and arguments are those the core specified before they moved here, so
implementations need no change. Call them through :mod:`pamcore_ssh.hooks`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

import pluggy

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from pamcore.config import Config
    from pamcore.core import Pamcore
    from pamcore.model import ActivitySession, Resource

hookspec = pluggy.HookspecMarker("pamcore")

#: The keys a ``pamcore_ssh_algorithms`` answer may use.
SSH_ALGORITHM_KINDS = ("kex", "encryption", "mac", "server_host_key")


class TerminalAssistant(Protocol):
    """Watches one relayed terminal channel (``pamcore_ssh_terminal_assistant``) and may
    answer the target's prompts for the user. Its answers go to the target only: never to
    the user's terminal, the recording or a log."""

    def typed(self, data: bytes) -> None:
        """What the user typed, before it goes to the target."""

    def shown(self, data: bytes) -> bytes:
        """What the target printed; returns bytes to send to the target (``b""``: none)."""
        ...


@hookspec
def pamcore_ssh_algorithms(resource: Resource, config: Config) -> dict[str, list[str]] | None:
    """Extra SSH algorithms for the proxy's outgoing connection to ``resource``.

    Called by the SSH plugin before it connects to a target (proxy and actions alike).
    Answers are collected and the lists appended after the defaults, in plugin order,
    without duplicates, so modern algorithms stay preferred. Never applied to the
    user-facing side. A connection that negotiates one of these names is audited as
    ``connection.legacy_algorithms`` and badged on the dashboard.

    :param resource: the target resource (its ``settings`` say whether it opted in).
    :param config: the instance configuration (``plugin_settings`` holds proxy-wide
        opt-ins).
    :return: ``{"kex": [...], "encryption": [...], "mac": [...], "server_host_key": [...]}``
        (any subset), or ``None``.
    """


@hookspec(firstresult=True)
def pamcore_ssh_handshake_hint(resource: Resource, error: str, config: Config) -> str | None:
    """Explain a failed SSH handshake with ``resource`` to the user in plain words.

    Called by the SSH plugin when key exchange fails. Stops at first non-None result.

    :param resource: the target resource.
    :param error: the handshake error text.
    :param config: the instance configuration.
    :return: one or more lines to show the user and store in the audit log, or ``None``.
    """


@hookspec
def pamcore_ssh_terminal_assistant(
    core: Pamcore, db: Session, session: ActivitySession, resource: Resource
) -> Callable[[], TerminalAssistant] | None:
    """Offer a helper that watches each terminal channel to ``resource`` and may answer
    the target's prompts for the user (a Cisco ``enable`` secret, say).

    Called by the SSH plugin once per admitted connection, in the admission's unit of work
    (read the vault here, not later). Answers are collected; the factory is called once per
    terminal channel. What an assistant answers goes to the target only: never to the
    user's terminal, the recording or a log.

    :param core: the running core (vault, configuration).
    :param db: the admission's unit of work.
    :param session: the session the connection belongs to.
    :param resource: the target resource.
    :return: a factory of :class:`TerminalAssistant`, or ``None``.
    """
