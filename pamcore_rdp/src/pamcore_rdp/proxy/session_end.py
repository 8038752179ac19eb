"""The session-end banner of one relayed connection and Ctrl+X to extend (docs/design/rdp.md §3.4).

Inside the profile's warning window the banner (:mod:`pamcore_rdp.proxy.banner`) is painted over
the target's updates, repainted every REPAINT_SECONDS or at once when its text changes;
Ctrl+X, taken out of the client's fast-path input while the banner shows, asks the core's
extend service as the session's requester and the banner shows the outcome.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from pamcore.core import Pamcore
from pamcore.errors import PamError
from pamcore.proxy import Admitted, extend, extensions_left_phrase, format_utc
from pamcore_rdp.pdu.activation import ClientCapabilities
from pamcore_rdp.pdu.paint import SUPPORTED_BPP
from pamcore_rdp.proxy.banner import (
    REPAINT_SECONDS,
    TOP,
    CtrlX,
    Overlay,
    banner_image,
    banner_left,
    fastpath_bitmap_pdus,
)
from pamcore_rdp.proxy.target import RdpTarget

log = logging.getLogger(__name__)


class SessionEnd:
    """The banner state of one connection; the relay feeds it the target's updates, the
    client's capabilities and input, and the watch's end time."""

    def __init__(
        self, core: Pamcore, admitted: Admitted[RdpTarget], client: asyncio.StreamWriter
    ) -> None:
        self.core = core
        self.admitted = admitted
        self._client = client
        #: On when the profile warns; off, the relay passes bytes untouched.
        self.on = admitted.warning > dt.timedelta(0)
        self.overlay = Overlay()
        self._capabilities: ClientCapabilities | None = None
        self._ends_at = admitted.ends_at
        self._armed = False
        #: What the banner shows under its headline: the hint, or an extension's outcome.
        self._detail: tuple[str, bool] | None = None
        self._painted: tuple[str, str, bool] | None = None
        self._painted_at = 0.0
        self._unpainted = False
        self.extending: asyncio.Task[None] | None = None
        self.ctrl_x = CtrlX(lambda: self._armed, self._extend)

    def activated(self, capabilities: ClientCapabilities) -> None:
        """The client's Confirm Active: colour depth and desktop size to paint with."""
        self._capabilities = capabilities
        self._painted = None  # a reactivation may have cleared the screen

    def update(self, ends_at: dt.datetime, now: dt.datetime) -> None:
        """The watch's end time each second: inside the warning window the banner shows
        (repainted every REPAINT_SECONDS, or at once when its text changes)."""
        if ends_at != self._ends_at:
            self._detail = None
        self._ends_at = ends_at
        shown = self.on and dt.timedelta(0) < ends_at - now <= self.admitted.warning
        self._armed = shown and self.admitted.extendable  # else Ctrl+X goes to the target
        if not shown:
            return
        headline, hint = banner_text(ends_at, now, self.admitted.extendable)
        detail, error = self._detail or (hint, False)
        self._paint(headline, detail, error)

    def _paint(self, headline: str, detail: str, error: bool, *, now: bool = False) -> None:
        caps = self._capabilities
        if caps is None:
            return  # not activated yet
        why = self.overlay.failed
        if caps.bits_per_pixel not in SUPPORTED_BPP:
            why = f"the session's {caps.bits_per_pixel} bpp is not one of {SUPPORTED_BPP}"
        if why is not None:
            if not self._unpainted:
                self._unpainted = True  # said once; Ctrl+X still works
                log.info("rdp connection #%s: no banner: %s", self.admitted.connection_id, why)
            return
        content = (headline, detail, error)
        stale = time.monotonic() - self._painted_at >= REPAINT_SECONDS
        if content == self._painted and not stale and not now:
            return
        self._painted, self._painted_at = content, time.monotonic()
        image = banner_image(headline, detail, error)
        pdus = fastpath_bitmap_pdus(image, banner_left(caps.width), TOP, caps.bits_per_pixel)
        self._client.writelines(self.overlay.paint(pdus))

    def _extend(self) -> None:
        """Ctrl+X: ask the core for an extension (one request at a time)."""
        if self.extending is None or self.extending.done():
            self.extending = asyncio.create_task(self._extension())

    async def _extension(self) -> None:
        text, refused = await asyncio.to_thread(extend_for_requester, self.core, self.admitted)
        self._detail = (text, refused)
        headline = self._painted[0] if refused and self._painted else "pamcore: session extended"
        self._paint(headline, text, refused, now=True)


def banner_text(ends_at: dt.datetime, now: dt.datetime, extendable: bool) -> tuple[str, str]:
    """The banner's headline and the line under it: Ctrl+X only where it can extend."""
    minutes = max(1, -(-int((ends_at - now).total_seconds()) // 60))
    headline = f"pamcore: session ends at {format_utc(ends_at, now)} ({minutes} min left)"
    if extendable:
        return headline, "Press Ctrl+X to extend the session."
    return headline, "The connection profile does not allow extending it; save your work."


def extend_for_requester(core: Pamcore, admitted: Admitted[RdpTarget]) -> tuple[str, bool]:
    """Ctrl+X in the session: the core's extend service decides (window, count, profile),
    as the session's requester; (the sentence for the banner, whether it was refused)."""
    try:
        extension = extend(core, admitted.session_id)
    except PamError as exc:
        return f"Not extended: {exc}", True
    until = format_utc(extension.new_end, core.now())
    return f"Extended to {until} ({extensions_left_phrase(extension)}).", False
