"""Phase A: the proxy as an RDP server, far enough to learn who connects and to get a
password from them, then a Server Redirection PDU that sends the client back to the
listener with a one-time redirect token (design: docs/design/rdp.md §3.4).

Sequence (MS-RDPBCGR 1.3.1.1): X.224 Connection Confirm selecting TLS, TLS with the
proxy certificate, MCS Connect Response, Attach User and Channel Join confirms, the Client
Info PDU, a "valid client" licence. A good password in Client Info is redirected at once,
so the user sees nothing. Otherwise the connection is activated (Demand Active ... Font
Map) and the prompt is painted, reading keystrokes until a password signs in (three
tries). A session that cannot be used yet keeps the connection in the waiting room: a card
saying what it waits for, updated as that changes and repainted now and then so the client
stays connected, until the session is Available (then the redirection, as after a sign-in),
it finishes, or the gate's bound passes. A card that ends the connection is followed by a
Set Error Info PDU, so the client does not reconnect on its own (FreeRDP's auto-reconnect
only follows a disconnect without one).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from typing import Protocol

from pamcore.errors import PamError
from pamcore.proxy import UNEXPECTED
from pamcore_rdp.pdu.clientinfo import ClientInfo
from pamcore_rdp.pdu.errors import RdpProtocolError
from pamcore_rdp.pdu.keys import Keyboard
from pamcore_rdp.pdu.prompt import PasswordPrompt, status_card
from pamcore_rdp.pdu.x224 import ConnectionRequest
from pamcore_rdp.proxy.client_leg import ClientLeg, FrontClosed, paint_card, sentence, show_card

log = logging.getLogger(__name__)

#: The client or the network went away: nothing to show, the listener logs it.
GONE = (FrontClosed, asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, TimeoutError)

#: How long the prompt waits for the next keystroke.
PROMPT_TIMEOUT = 120.0
#: Tries at the prompt before the connection closes.
TRIES = 3
#: Seconds between two looks at a waiting session, and between two paints of an unchanged
#: waiting card (traffic, so neither the client nor a middlebox drops an idle connection).
POLL_SECONDS = 2.0
KEEPALIVE_SECONDS = 20.0


@dataclass(frozen=True)
class Redirect:
    """The password signed in and the session can be used: redirect with ``token``."""

    token: str


@dataclass(frozen=True)
class Retry:
    """Wrong password: ``message`` goes on the prompt's error line."""

    message: str


@dataclass(frozen=True)
class Waiting:
    """Signed in, but the session cannot be used yet: ``message`` says why, and what the
    waiting room does; the gate asks again with :meth:`Gate.poll`."""

    message: str
    #: The gate's own state (the session, the user, the end of the wait).
    context: object = field(default=None, compare=False, repr=False)


Outcome = Redirect | Retry | Waiting


@dataclass(frozen=True)
class Visitor:
    """Who is connecting, as far as the first connection tells: the user name shown on
    the prompt and the resource, if known yet."""

    username: str
    target: str | None
    #: The gate's own state (the redeemed routing token, the parsed login name).
    context: object = field(default=None, compare=False, repr=False)


class Gate(Protocol):
    """The listener's side of Phase A: names and passwords checked by the core."""

    async def identify(self, request: ConnectionRequest, info: ClientInfo) -> Visitor:
        """Who and where, from the routing token or the Client Info user name; raises
        PamError with the line the user sees."""
        ...

    async def sign_in(self, visitor: Visitor, password: str) -> Outcome:
        """Check the password and the session; raises PamError for a refusal."""
        ...

    async def poll(self, waiting: Waiting) -> Redirect | Waiting:
        """The waiting session again: a redirect once Available, else why it still waits;
        raises PamError when it finished or the wait's bound passed."""
        ...


async def serve(
    conn: ClientLeg, request: ConnectionRequest, tls: ssl.SSLContext, gate: Gate
) -> None:
    """Run Phase A on one connection; returns when the connection can be closed."""
    info = await conn.accept(request, tls)
    try:
        visitor = await gate.identify(request, info)
    except PamError as exc:
        log.info("rdp front %s: refused before sign-in: %s", conn.peer, exc)
        await show_card(conn, sentence(str(exc)))
        return
    except GONE:
        raise
    except Exception:
        log.exception("rdp front %s: identifying the client failed", conn.peer)
        await show_card(conn, sentence(UNEXPECTED))
        return
    outcome: Outcome | None = Retry("")
    try:
        if info.password:
            outcome = await gate.sign_in(visitor, info.password)
        if isinstance(outcome, Retry):
            outcome = await _prompt(conn, gate, visitor, outcome)
        if isinstance(outcome, Waiting):
            outcome = await _wait(conn, gate, visitor, outcome)
    except (PamError, RdpProtocolError) as exc:
        log.info("rdp front %s: %s refused: %s", conn.peer, visitor.username, exc)
        await show_card(conn, sentence(str(exc)))
        return
    except GONE:
        raise
    except Exception:
        log.exception("rdp front %s: signing in %s failed", conn.peer, visitor.username)
        await show_card(conn, sentence(UNEXPECTED))
        return
    if isinstance(outcome, Redirect):
        log.info("rdp front %s: %s signed in, redirecting", conn.peer, visitor.username)
        await conn.redirect(outcome.token)


async def _prompt(conn: ClientLeg, gate: Gate, visitor: Visitor, outcome: Retry) -> Outcome | None:
    """The inline prompt: paint, read keys, sign in on Enter, until the outcome is not a
    wrong password; ``None`` (after saying so) when the tries ran out."""
    prompt = PasswordPrompt(visitor.username, visitor.target, TRIES)
    keyboard = Keyboard()
    while isinstance(outcome, Retry):
        if prompt.tries_left <= 0:
            log.info("rdp front %s: %s: no tries left; closing", conn.peer, visitor.username)
            await show_card(conn, "Too many wrong passwords. Connect again to retry.")
            return None
        prompt.error = outcome.message
        await paint_card(conn, prompt.render())
        outcome = await gate.sign_in(visitor, await _read_password(conn, prompt, keyboard))
    return outcome


async def _wait(conn: ClientLeg, gate: Gate, visitor: Visitor, waiting: Waiting) -> Outcome:
    """The waiting room: the card says why the session waits, repainted when that changes
    and every :data:`KEEPALIVE_SECONDS`; the client's input is read (and ignored) so a
    disconnect ends the wait at once. Returns the redirect; raises PamError when the
    session finished or the gate's bound passed, FrontClosed when the client left."""
    loop = asyncio.get_running_loop()
    await paint_card(conn, status_card(waiting.message))  # activates the connection first
    log.info("rdp front %s: %s waits: %s", conn.peer, visitor.username, waiting.message)
    shown, painted = waiting.message, loop.time()
    reading = asyncio.ensure_future(conn.keys(None))
    outcome: Redirect | Waiting = waiting
    try:
        while isinstance(outcome, Waiting):
            if outcome.message != shown:
                log.info("rdp front %s: %s waits: %s", conn.peer, visitor.username, outcome.message)
            if outcome.message != shown or loop.time() - painted >= KEEPALIVE_SECONDS:
                await paint_card(conn, status_card(outcome.message))
                shown, painted = outcome.message, loop.time()
            until = loop.time() + POLL_SECONDS
            while (left := until - loop.time()) > 0:
                done, _ = await asyncio.wait({reading}, timeout=left)
                if done:
                    reading.result()  # FrontClosed when the client left
                    reading = asyncio.ensure_future(conn.keys(None))
            outcome = await gate.poll(outcome)
        return outcome
    finally:
        # A frame cut short here is lost, which is harmless: what follows is the
        # redirection (which reads raw bytes until the client leaves) or a closing card.
        reading.cancel()
        await asyncio.wait({reading})  # the reader is free again


async def _read_password(conn: ClientLeg, prompt: PasswordPrompt, keyboard: Keyboard) -> str:
    """Keystrokes into the prompt until Enter, repainting the field as it changes."""
    while True:
        typed = False
        for key in await conn.keys(PROMPT_TIMEOUT):
            char = keyboard.press(key)
            if char is None:
                continue
            if prompt.type(char):
                return prompt.submit()
            typed = True
        if typed:
            await paint_card(conn, prompt.render())
