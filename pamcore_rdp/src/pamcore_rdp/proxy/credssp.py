"""CredSSP (MS-CSSP) to an NLA target with the vaulted credential, run on the raw target
stream right after the X.224 Connection Confirm (MS-RDPBCGR 5.4.5.2).

pyspnego's CredSSP context does its own TLS over memory BIOs (docs/design/rdp.md §2): its tokens
are raw TLS records and, once it is complete, every byte to and from the target goes
through its ``wrap``/``unwrap`` (:class:`CredSSPLeg`). Three things it leaves to its caller
are done here through public ``ssl`` hooks — an ``SSLContext`` subclass whose ``wrap_bio``
keeps the BIOs, and ``SSLContext.sslobject_class``:

* **Whole flights.** ``step`` takes a TLS handshake as finished when its input yields no
  answer, and expects one whole TSRequest per call; but a handshake flight spans several
  TLS records, and a TLS 1.3 server sends NewSessionTicket records before its first
  TSRequest. So records go into the context's BIO as they arrive, and ``step`` runs only
  once the TLS engine has an answer ready, or a whole DER TSRequest has been decrypted
  (handed back to the context through :attr:`_TargetTLS.pushback`).
* **The close_notify loop** (pyspnego 0.12.4, ``CredSSPProxy.unwrap``): see
  :meth:`_TargetTLS.read`. A target that refuses the password (freerdp-shadow) closes TLS
  this way, so without the fix a wrong vaulted password hangs the proxy.
* **Token dumps** at DEBUG level (NTLM messages can be cracked offline): filtered out.

The TLS context is the caller's (:class:`TargetTLSContext`, set up by
:mod:`pamcore_rdp.proxy.trust`), and so is the certificate check: it runs once the handshake is
done and before any CredSSP message goes out, so the NTLM messages (crackable offline) and
the TSCredentials only ever go to a trusted target.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import struct
from collections.abc import Awaitable, Callable

import spnego
from spnego.exceptions import BadBindingsError, SpnegoError
from spnego.tls import CredSSPTLSContext

from pamcore.errors import ProtocolError
from pamcore_rdp.settings import NLA_MECHANISMS

log = logging.getLogger(__name__)

#: TLS record header: content type, version, length (RFC 8446 §5.1).
_RECORD_HEADER = 5
#: Stages pyspnego reports (``get_extra_info("auth_stage")``) while still in TLS.
_TLS_STAGE = "TLS Handshake"
#: MS-RDPBCGR 2.2.10.2 Early User Authorization Result PDU (HYBRID_EX only).
AUTHZ_SUCCESS = 0x00000000
AUTHZ_ACCESS_DENIED = 0x00000005
#: NTSTATUS codes a target may put in a TSRequest errorCode (MS-CSSP 2.2.1, MS-ERREF 2.3).
_NTSTATUS = {
    0xC000006D: "logon failure",
    0xC000006A: "wrong password",
    0xC0000064: "no such user",
    0xC0000234: "account locked out",
    0xC0000072: "account disabled",
    0xC0000071: "password expired",
    0xC0000224: "password must be changed",
    0xC000015B: "logon type not granted",
    0xC000006E: "account restriction",
}


class CredSSPError(ProtocolError):
    """CredSSP with the target failed; the message is for the user and the audit log."""


class CredentialRefused(CredSSPError):
    """The target refused the vaulted credential (as opposed to a protocol failure)."""


class _TargetTLS(ssl.SSLObject):
    """The TLS object pyspnego's context uses for the target, with a read that ends."""

    #: Plaintext already decrypted by the driver, returned by the next read.
    pushback = b""
    #: The target sent close_notify.
    peer_closed = False

    def read(self, len: int = 1024, buffer: bytearray | None = None) -> bytes:  # type: ignore[override]
        """Workaround for pyspnego 0.12.4: ``CredSSPProxy.unwrap`` reads in ``while True``
        until ``SSLWantReadError``, but after the peer's close_notify CPython's read
        returns ``b''`` on every call (SSL_ERROR_ZERO_RETURN), so it spins for ever.
        End the loop the way it expects and note the close for the caller."""
        if self.pushback:
            data, self.pushback = self.pushback[:len], self.pushback[len:]
            return data
        data = super().read(len, buffer)
        if not data:
            self.peer_closed = True
            raise ssl.SSLWantReadError("the target closed TLS (close_notify)")
        return data  # type: ignore[return-value]


class TargetTLSContext(ssl.SSLContext):
    """Client TLS context for CredSSP that keeps the BIOs pyspnego wraps, and names the
    target for OpenSSL's host name check (pyspnego's ``wrap_bio`` passes no name)."""

    sslobject_class = _TargetTLS
    incoming: ssl.MemoryBIO
    outgoing: ssl.MemoryBIO
    tls: _TargetTLS
    server_name: str | None = None

    def wrap_bio(  # type: ignore[override]
        self,
        incoming: ssl.MemoryBIO,
        outgoing: ssl.MemoryBIO,
        server_side: bool = False,
        server_hostname: str | None = None,
        session: ssl.SSLSession | None = None,
    ) -> _TargetTLS:
        self.incoming, self.outgoing = incoming, outgoing
        name = server_hostname or self.server_name
        self.tls = super().wrap_bio(incoming, outgoing, server_side, name, session)  # type: ignore[assignment]
        return self.tls


class _NoTokenDumps(logging.Filter):
    """Drop pyspnego's DEBUG dumps of tokens: an NTLM AUTHENTICATE message is a secret."""

    PREFIXES = ("CredSSP step", "CredSSP TSRequest", "NTLM step", "SPNEGO step")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.PREFIXES)


_FILTER = _NoTokenDumps()


def _quiet_spnego() -> None:
    for name in ("spnego._credssp", "spnego._ntlm", "spnego._negotiate"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


class CredSSPLeg:
    """The target leg once CredSSP is done: TLS of the CredSSP context on the raw stream."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        context: spnego.ContextProxy,
        tls: _TargetTLS,
        leftover: bytes = b"",
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._context = context
        self._tls = tls
        self._leftover = leftover

    async def read(self, size: int = 65536) -> bytes:
        """Plaintext from the target; ``b''`` once it closed (TCP or TLS)."""
        if self._leftover:
            data, self._leftover = self._leftover, b""
            return data
        while not self._tls.peer_closed:
            raw = await self._reader.read(size)
            if not raw:
                return b""
            try:
                data: bytes = self._context.unwrap(raw).data
            except SpnegoError as exc:
                raise CredSSPError(f"TLS to the target failed: {exc}") from None
            if data:
                return data
        return b""

    def write(self, data: bytes) -> None:
        self._writer.write(self._context.wrap(data).data)

    async def drain(self) -> None:
        await self._writer.drain()

    def close(self) -> None:
        self._writer.close()


class _Exchange:
    """Feeds pyspnego's context whole flights read from the target (see the module doc)."""

    def __init__(self, reader: asyncio.StreamReader, tls: TargetTLSContext) -> None:
        self.reader = reader
        self.tls = tls
        self.plain = bytearray()

    async def record(self) -> None:
        """Move one whole TLS record from the target into the context's BIO."""
        header = await self.reader.readexactly(_RECORD_HEADER)
        (length,) = struct.unpack_from(">H", header, 3)
        self.tls.incoming.write(header + await self.reader.readexactly(length))

    async def handshake_flight(self) -> None:
        """Read until the TLS engine has answered the target's flight (or finished)."""
        while True:
            await self.record()
            try:
                self.tls.tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                if self.tls.outgoing.pending:
                    return

    async def plaintext(self, complete: int | None = None) -> None:
        """Decrypt records until ``complete`` bytes (or, by default, one whole DER
        element: a TSRequest) are held in :attr:`plain`."""
        while True:
            need = complete if complete is not None else _der_size(self.plain)
            if need is not None and len(self.plain) >= need:
                return
            if self.tls.tls.peer_closed:
                raise EOFError
            await self.record()
            while True:
                try:
                    self.plain += self.tls.tls.read(65536)
                except ssl.SSLWantReadError:
                    break

    def hand_back(self, size: int | None = None) -> None:
        """Give the context what it will read next (one TSRequest, by default)."""
        size = _der_size(self.plain) if size is None else size
        self.tls.tls.pushback = bytes(self.plain[:size])
        del self.plain[:size]


def _der_size(data: bytes | bytearray) -> int | None:
    """Total size of the DER element at the start of ``data``, ``None`` if not yet known."""
    if len(data) < 2:
        return None
    first = data[1]
    if first < 0x80:
        return 2 + first
    count = first & 0x7F
    if not 1 <= count <= 3:
        raise CredSSPError(f"the target sent a malformed TSRequest (length of {count} bytes)")
    if len(data) < 2 + count:
        return None
    return 2 + count + int.from_bytes(data[2 : 2 + count], "big")


CertificateCheck = Callable[[bytes | None], Awaitable[None]]


async def authenticate(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    *,
    tls: TargetTLSContext,
    check_certificate: CertificateCheck,
    username: str,
    password: str,
    domain: str,
    mechanism: str,
    hostname: str,
    resource: str,
    early_auth: bool,
    timeout: float,
) -> CredSSPLeg:
    """Run CredSSP as the client on the target stream, within ``timeout`` seconds.

    ``mechanism``: the inner one (``rdp.nla_mechanism``: Windows rejects bare NTLM inside
    CredSSP, FreeRDP 2 rejects SPNEGO, docs/design/rdp.md §2); ``resource`` names the target in
    messages; ``early_auth``: the target selected
    HYBRID_EX, so it sends an Early User Authorization Result after CredSSP;
    ``check_certificate`` gets the target's certificate (DER) once TLS is up, before any
    CredSSP message, and raises to refuse it. Raises :class:`CredentialRefused` or
    :class:`CredSSPError`, ``ssl.SSLCertVerificationError`` when ``tls`` verifies
    certificates and this one fails, or what ``check_certificate`` raises.
    """
    who = f"{username}@{resource}"
    if mechanism not in NLA_MECHANISMS:
        raise CredSSPError(
            f"unknown NLA mechanism {mechanism!r} for {who}: use one of {', '.join(NLA_MECHANISMS)}"
        )
    _quiet_spnego()
    principal = f"{domain}\\{username}" if domain else username
    tls.server_name = hostname
    inner = spnego.client(
        principal, password, hostname=hostname, service="TERMSRV", protocol=mechanism
    )
    context = spnego.client(
        principal,
        password,
        hostname=hostname,
        service="TERMSRV",
        protocol="credssp",
        credssp_negotiate_context=inner,
        credssp_tls_context=CredSSPTLSContext(tls),
    )
    exchange = _Exchange(reader, tls)
    try:
        async with asyncio.timeout(timeout):
            await _run(context, exchange, writer, check_certificate)
            if early_auth:
                await _early_user_authorization(exchange, who)
    except TimeoutError:
        raise CredSSPError(
            f"CredSSP with the target for {who} did not finish within {timeout:g} s "
            f"({_stage(context)})"
        ) from None
    except (EOFError, asyncio.IncompleteReadError, ConnectionError):
        raise _closed(context, who, resource, mechanism) from None
    except BadBindingsError:
        raise CredSSPError(
            f"CredSSP with the target for {who}: the target's public key did not match its "
            "TLS certificate (a machine in the middle?); not sending the credential"
        ) from None
    except SpnegoError as exc:
        if isinstance(exc.__cause__, ssl.SSLCertVerificationError):
            raise exc.__cause__ from None  # pyspnego wraps the handshake's errors
        raise _refusal(context, exc, who, resource, mechanism) from None
    except ssl.SSLCertVerificationError:
        raise
    except ssl.SSLError as exc:
        raise CredSSPError(
            f"TLS with the target failed during CredSSP for {who}: {exc.reason or exc}"
        ) from None
    return CredSSPLeg(reader, writer, context, tls.tls, bytes(exchange.plain))


async def _run(
    context: spnego.ContextProxy,
    exchange: _Exchange,
    writer: asyncio.StreamWriter,
    check_certificate: CertificateCheck,
) -> None:
    token = context.step()
    checked = False
    while True:
        if not checked and _handshake_done(exchange.tls.tls):
            # Before the client's last handshake flight (TLS 1.3) or the first TSRequest.
            await check_certificate(exchange.tls.tls.getpeercert(binary_form=True))
            checked = True
        if token:
            writer.write(token)
            await writer.drain()
        if context.complete:
            return
        if _stage(context) == _TLS_STAGE:
            # After the ClientHello (or a TLS 1.2 client flight) wait for the target's
            # flight; after TLS 1.3's client Finished, the next step starts CredSSP.
            if not exchange.tls.outgoing.pending and not _handshake_done(exchange.tls.tls):
                await exchange.handshake_flight()
        else:
            await exchange.plaintext()
            exchange.hand_back()
        token = context.step(b"")


def _handshake_done(tls: ssl.SSLObject) -> bool:
    try:
        tls.do_handshake()
    except ssl.SSLWantReadError:
        return False
    return True


async def _early_user_authorization(exchange: _Exchange, who: str) -> None:
    """MS-RDPBCGR 2.2.10.2: the HYBRID_EX target's verdict, 4 bytes, after CredSSP."""
    await exchange.plaintext(4)
    (result,) = struct.unpack_from("<I", exchange.plain)
    del exchange.plain[:4]
    if result == AUTHZ_ACCESS_DENIED:
        raise CredentialRefused(
            f"the target accepted the vaulted password for {who} but denied it access "
            "(Early User Authorization: ACCESS_DENIED); may the account log on through "
            "Remote Desktop?"
        )
    if result != AUTHZ_SUCCESS:
        raise CredSSPError(
            f"the target sent an unknown Early User Authorization result 0x{result:08x} for {who}"
        )


def _stage(context: spnego.ContextProxy) -> str:
    return str(context.get_extra_info("auth_stage") or _TLS_STAGE)


def _closed(context: spnego.ContextProxy, who: str, resource: str, mechanism: str) -> CredSSPError:
    """The target closed the connection (TCP or TLS) part-way: say what that means."""
    stage = _stage(context)
    if stage == _TLS_STAGE:
        return CredSSPError(
            f"the target closed the connection during the TLS handshake of CredSSP for {who}"
        )
    if stage == "Authentication 1":
        return _mechanism_hint(who, resource, mechanism, "closed the connection at")
    return CredentialRefused(f"the vaulted password for {who} was refused by the target (CredSSP)")


def _mechanism_hint(who: str, resource: str, mechanism: str, what: str) -> CredSSPError:
    """The target gave up on the first CredSSP message: most likely the wrong mechanism."""
    other = "ntlm" if mechanism == "negotiate" else "negotiate"
    kind = "FreeRDP-based targets" if other == "ntlm" else "Windows"
    return CredSSPError(
        f"the target {what} the first CredSSP message for {who}: its NLA may need the "
        f"{other} mechanism ({kind}); run 'pamcore resources set-setting {resource} "
        f"rdp.nla_mechanism {other}'"
    )


def _refusal(
    context: spnego.ContextProxy, exc: SpnegoError, who: str, resource: str, mechanism: str
) -> CredSSPError:
    """A TSRequest errorCode (MS-CSSP 2.2.1) or a local failure of the context."""
    status = getattr(exc, "nt_status", None)
    base = getattr(exc, "base_error", None)
    code = getattr(base, "winerror", None) or status
    if isinstance(code, int):
        code &= 0xFFFFFFFF
        if code in _NTSTATUS:
            return CredentialRefused(
                f"the vaulted password for {who} was refused by the target "
                f"(CredSSP: {_NTSTATUS[code]})"
            )
    if _stage(context) == "Authentication 1":
        return _mechanism_hint(who, resource, mechanism, "refused")
    return CredSSPError(f"CredSSP with the target for {who} failed ({_stage(context)}): {exc}")
