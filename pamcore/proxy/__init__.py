"""The proxy kit: what a protocol plugin's listener needs of the core, and nothing more.

A listener calls, each in a worker thread (``asyncio.to_thread``; the ``async`` ones do
that themselves): ``sign_in*`` → (:func:`choices` | :func:`route`, then
:func:`still_waiting` while :attr:`Route.waiting`) → :func:`admit` with the protocol's
``extra``; it holds the :class:`Admitted` in :class:`LiveConnections`, whose
:meth:`~LiveConnections.watch` brings session ends, extensions and terminations, relays,
then ``await close(core, admitted, reason)``. Every decision stays in the core's services;
each call here runs in a unit of work of its own and returns detached values
(docs/design/proxy-kit.md §2). Import this package, never its private modules.
"""

from __future__ import annotations

from pamcore.clock import format_utc
from pamcore.directconnect import GRAMMAR, DirectConnectName, login_name, parse_login
from pamcore.metrics import relayed
from pamcore.presenters import extensions_left_phrase
from pamcore.probe import probe
from pamcore.proxy._admission import (
    UNEXPECTED,
    Admitted,
    admit,
    audit,
    close,
    extend,
    pin_host_key,
    session_end,
)
from pamcore.proxy._live import LiveConnections, subscribe
from pamcore.proxy._recording import recording_failed, register_recording
from pamcore.proxy._signin import (
    CODE_DIGITS,
    NEEDS_CODE,
    Choice,
    Route,
    SignIn,
    choices,
    route,
    sign_in,
    sign_in_appended,
    sign_in_code,
    sign_in_key,
    still_waiting,
)
from pamcore.proxy._tokens import ConnectionPass, Once, hold_once, redeem_once, redeem_token
from pamcore.recording_files import (
    MIB,
    ByteBudget,
    DigestWriter,
    FixedBudget,
    on_private,
    recording_cap,
)
from pamcore.services.connections import LEGACY_ALGORITHMS
from pamcore.services.inventory import host_key_refusal
from pamcore.services.origins import check_terminal_origin as check_origin
from pamcore.services.recording_budgets import SessionBudget
from pamcore.services.recordings import ASCIICAST_V2
from pamcore.services.sessions import Extension
from pamcore.services.terminal_tokens import TERMINAL, TokenUse, instance_secret
from pamcore.session_changes import SessionChange
from pamcore.vault import Revealed

__all__ = [
    "ASCIICAST_V2",
    "CODE_DIGITS",
    "GRAMMAR",
    "LEGACY_ALGORITHMS",
    "MIB",
    "NEEDS_CODE",
    "TERMINAL",
    "UNEXPECTED",
    "Admitted",
    "ByteBudget",
    "Choice",
    "ConnectionPass",
    "DigestWriter",
    "DirectConnectName",
    "Extension",
    "FixedBudget",
    "LiveConnections",
    "Once",
    "Revealed",
    "Route",
    "SessionBudget",
    "SessionChange",
    "SignIn",
    "TokenUse",
    "admit",
    "audit",
    "check_origin",
    "choices",
    "close",
    "extend",
    "extensions_left_phrase",
    "format_utc",
    "hold_once",
    "host_key_refusal",
    "instance_secret",
    "login_name",
    "on_private",
    "parse_login",
    "pin_host_key",
    "probe",
    "recording_cap",
    "recording_failed",
    "redeem_once",
    "redeem_token",
    "register_recording",
    "relayed",
    "route",
    "session_end",
    "sign_in",
    "sign_in_appended",
    "sign_in_code",
    "sign_in_key",
    "still_waiting",
    "subscribe",
]
