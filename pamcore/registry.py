"""What plugins hand to the core through the ``register`` callables of registration hooks.

Plain dataclasses, so a plugin needs nothing but ``pamcore`` to describe what it brings.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from pamcore.config import Config
    from pamcore.core import Pamcore
    from pamcore.model import ActivitySession, Resource, User


@dataclass(frozen=True)
class LaunchInfo:
    """How a person starts a connection for a session: shown next to the Connection icon."""

    #: The command a native client uses, e.g. ``ssh -p 4422 alice+Linux-Admin+web01@pam``:
    #: a shell line with every word quoted (``shlex.join``), since administrators choose
    #: the activity and resource names in it.
    command: str = ""
    #: A URI a browser can hand to a client (``ssh://...``), or a dashboard path.
    uri: str = ""
    #: A file to download (``.rdp``): (file name, media type, content).
    file: tuple[str, str, bytes] | None = None
    #: A dashboard path that makes ``file`` afresh per download (the ``.rdp`` file's
    #: one-time routing token); the Connection page's download link then points there.
    file_url: str = ""
    #: A dashboard path to a terminal in the browser (the SSH plugin's xterm.js page).
    terminal: str = ""
    #: More dashboard pages about this way in, as (label, path): e.g. the RDP proxy's
    #: certificate fingerprint, to compare with the client's prompt.
    links: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ConnectionTest:
    """Result of probing a resource's port: reachable or not, and what was learned."""

    ok: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)


class Listener(Protocol):
    """A proxy listener a protocol plugin starts inside ``pamcore run`` / ``pamcore proxy``."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @property
    def port(self) -> int: ...


@dataclass(frozen=True)
class ProtocolHandler:
    """A protocol a plugin brings: ``ssh``, ``rdp``, ``tcp``..."""

    name: str
    #: Where the proxy listens unless ``[pamcore.proxy_ports]`` says otherwise: read
    #: :meth:`port` for the port in use.
    default_port: int
    description: str = ""
    #: (core, host, port) -> a listener; ``port`` 0 asks for any free port (tests).
    listener_factory: Callable[[Pamcore, str, int], Listener] | None = None
    #: (session, resource, user, proxy host, proxy port) -> how to connect to it; the port
    #: is :meth:`port`, the one the running instance listens on.
    client_launch: Callable[[ActivitySession, Resource, User, str, int], LaunchInfo] | None = None
    #: (address, port, timeout seconds) -> probe result, without credentials.
    connection_test: Callable[[str, int, float], Awaitable[ConnectionTest]] | None = None

    def port(self, config: Config) -> int:
        """The port this protocol's proxy listens on, and so the one every page, file and
        command names: ``[pamcore.proxy_ports] <name>`` in ``pamcore.toml``, else
        :attr:`default_port`."""
        return config.proxy_ports.get(self.name, self.default_port)


@dataclass(frozen=True)
class ActionContext:
    """What an action runner gets: the session, one resource, the login account and its
    password (for ephemeral accounts), the core (vault, configuration), and ``audit`` to
    record what it did. Runners may take seconds (network): the scheduler calls them
    outside any write transaction, so they must not write through ``session``'s database
    session; ``audit(action, **details)`` is the way to leave a trace (never a secret). Its
    events are written when the action returns, with the record that it finished, in one
    unit: after a crash an action either left both or neither, and then runs again, so a
    runner should cope with finding its work already done."""

    core: Pamcore
    session: ActivitySession
    resource: Resource
    login_account: str
    #: The ephemeral account's password: kept out of the repr (tracebacks, logs).
    login_password: str | None = field(repr=False)
    params: dict[str, Any]
    now: dt.datetime
    audit: Callable[..., None]


@dataclass(frozen=True)
class ActionType:
    """A pre- or post-session action type; ``run`` raises :class:`pamcore.errors.ActionFailed`
    (or any exception) to fail the session with a message."""

    name: str
    description: str
    run: Callable[[ActionContext], None]
    #: Parameter names the action understands, with a one-line help each.
    params: dict[str, str] = field(default_factory=dict)
    #: Platforms it applies to; empty means any.
    platforms: tuple[str, ...] = ()
    #: (database session, params) -> checks the parameters when the action is added to an
    #: activity, so a missing or unknown name is refused then, not when the first session
    #: starts; raises ValueError with a message an administrator can act on.
    check: Callable[[Session, dict[str, Any]], None] | None = None


@dataclass(frozen=True)
class ResourceSetting:
    """A per-resource setting a plugin understands, stored in ``resource.settings[plugin][key]``."""

    plugin: str
    key: str
    help: str
    #: Parses and validates the text an admin typed; raises ValueError with a clear message.
    parse: Callable[[str], Any] = str
    default: Any = None


@dataclass(frozen=True)
class PasswordDisplayDecision:
    """One plugin's say on a password reveal: allow or not, and for how long at most."""

    allow: bool
    seconds: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class AuthResult:
    """Tri-state authentication answer from ``pamcore_authenticate``: a plugin that does not
    know the user returns ``None`` instead of this."""

    ok: bool
    user: User | None = None
    reason: str = ""


@dataclass(frozen=True)
class RequestProblem:
    """A problem a plugin found in a session request (e.g. a malformed ticket number)."""

    field: str
    reason: str
