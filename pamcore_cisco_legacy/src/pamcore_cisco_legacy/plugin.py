"""Per-resource opt-in to legacy SSH algorithms (``diffie-hellman-group1-sha1`` and friends),
the handshake diagnosis, and Cisco IOS conveniences.

Legacy algorithms are data enabled per outgoing connection, never globally (asyncssh's
habit): a resource opts in with a profile or explicit lists, or matches the proxy-wide list
in ``[plugins.cisco_legacy]`` (:mod:`pamcore_cisco_legacy.algorithms`); the SSH plugin asks
:func:`pamcore_ssh_algorithms` before it connects to that resource only. When a handshake
fails, :func:`pamcore_ssh_handshake_hint` reads the server's KEXINIT
(:mod:`pamcore_cisco_legacy.kexinit`) and says what both sides offered and what to run.
An ``enable`` secret from the vault is typed for the user (:mod:`pamcore_cisco_legacy.enable`),
and a post-session action rotates a local IOS user's secret (:mod:`pamcore_cisco_legacy.ios`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from pamcore_ssh.actions import Remote, check_service_params, rotate_credential

from pamcore import hookimpl
from pamcore.actionkit import find_credential
from pamcore.errors import ActionFailed, NotFound
from pamcore.registry import ActionContext, ActionType, ResourceSetting
from pamcore_cisco_legacy import algorithms as algs
from pamcore_cisco_legacy.enable import EnableAssistant
from pamcore_cisco_legacy.ios import checked_username, set_user_secret
from pamcore_cisco_legacy.kexinit import KexinitError, ServerOffer, probe_kexinit

if TYPE_CHECKING:
    from pamcore_ssh.hookspecs import TerminalAssistant
    from sqlalchemy.orm import Session

    from pamcore.config import Config
    from pamcore.core import Pamcore
    from pamcore.model import ActivitySession, Resource

PLUGIN = algs.PLUGIN
ENABLE_KEY = "enable_credential"
GROUP1 = "diffie-hellman-group1-sha1"
#: Seconds the handshake hint may spend reading the server's KEXINIT.
PROBE_TIMEOUT = 3.0

log = logging.getLogger(__name__)


def _credential_name(text: str) -> str:
    return text.strip()


@hookimpl
def pamcore_register_resource_settings(register: Callable[[ResourceSetting], None]) -> None:
    profile = algs.PROFILES[algs.DEFAULT_PROFILE]
    register(
        ResourceSetting(
            plugin=PLUGIN,
            key=algs.PROFILE_KEY,
            help=f"Allow legacy SSH algorithms for this resource only: 'off' or "
            f"'{algs.DEFAULT_PROFILE}' (adds {', '.join(n for v in profile.values() for n in v)})",
            parse=algs.parse_profile,
            default=algs.OFF,
        )
    )
    for kind, (key, label, _, _) in algs.KINDS.items():
        register(
            ResourceSetting(
                plugin=PLUGIN,
                key=key,
                help=f"Extra {label} algorithms for this resource, comma-separated, appended "
                f"after the modern defaults (and the profile's)",
                parse=algs.list_parser(kind),
                default="",
            )
        )
    register(
        ResourceSetting(
            plugin=PLUGIN,
            key=ENABLE_KEY,
            help="Credential whose password is the device's enable secret: typed for the "
            "user after 'enable', and used by cisco-ios-rotate-secret",
            parse=_credential_name,
            default="",
        )
    )


@hookimpl
def pamcore_ssh_algorithms(resource: Resource, config: Config) -> dict[str, list[str]] | None:
    chosen = algs.legacy_algorithms(resource, config)
    if not chosen:
        return None
    algs.quiet_ffdh_warning()
    return chosen


@hookimpl
def pamcore_ssh_handshake_hint(resource: Resource, error: str, config: Config) -> str | None:
    """Say what both sides offered (from a KEXINIT probe) and how to opt the resource in."""
    offer = _probe(resource)
    mismatch = _mismatch(resource, config, offer) if offer else None
    if mismatch is None and not _looks_like_kex_failure(error):
        return None
    profile = algs.profile_for(resource, config)
    if mismatch:
        kind, client, server = mismatch
        said = (
            f"ssh: no common algorithm for {kind} with {resource.name}; "
            f"client offered: [{' '.join(client)}], server offered: [{' '.join(server)}]."
        )
    elif profile != algs.OFF:
        return None
    else:
        said = f"{resource.name} may only offer legacy SSH algorithms (such as {GROUP1})."
    if profile != algs.OFF:
        return f"{said} Legacy algorithms ({profile}) are already enabled for it."
    command = " ".join(
        [
            "pamcore resources set-setting",
            shlex.quote(resource.name),
            f"{PLUGIN}.{algs.PROFILE_KEY}",
            algs.DEFAULT_PROFILE,
        ]
    )
    return f"{said}\nAn administrator can allow legacy algorithms for this resource only: {command}"


@hookimpl
def pamcore_ssh_terminal_assistant(
    core: Pamcore, db: Session, session: ActivitySession, resource: Resource
) -> Callable[[], TerminalAssistant] | None:
    """Type the vaulted enable secret when the device asks for it after ``enable``; a
    misnamed credential is logged and the connection goes on without it."""
    try:
        secret = enable_secret(core, db, resource)
    except ActionFailed as exc:
        log.warning("no enable secret for %s: %s", resource.name, exc)
        return None
    if secret is None:
        return None
    return functools.partial(EnableAssistant, secret.encode())


def enable_secret(core: Pamcore, db: Session, resource: Resource) -> str | None:
    """The password of the credential named by ``cisco_legacy.enable_credential``; ``None``
    when none is set. A credential of another resource is refused (ActionFailed)."""
    name = str((resource.settings or {}).get(PLUGIN, {}).get(ENABLE_KEY, "")).strip()
    if not name:
        return None
    try:
        credential = find_credential(db, name)
    except NotFound as exc:
        raise ActionFailed(f"{PLUGIN}.{ENABLE_KEY} of {resource.name}: {exc}") from None
    if credential.resource is not None and credential.resource.id != resource.id:
        raise ActionFailed(
            f"{PLUGIN}.{ENABLE_KEY} of {resource.name} names credential '{credential.name}' "
            f"of {credential.resource.name}"
        )
    if credential.password_secret is None:
        raise ActionFailed(f"credential '{credential.name}' has no password (the enable secret)")
    return core.vault.reveal(credential.password_secret)


def _rotate_ios_secret(ctx: ActionContext) -> None:
    with ctx.core.reader() as db:
        enable = enable_secret(ctx.core, db, ctx.resource)

    async def set_secret(remote: Remote, user: str, secret: str) -> None:
        await set_user_secret(remote.conn, remote.where, user, secret, enable)

    rotate_credential(ctx, set_secret, checked_username, "cisco")


@hookimpl
def pamcore_register_actions(register: Callable[[ActionType], None]) -> None:
    register(
        ActionType(
            name="cisco-ios-rotate-secret",
            description="Set a new random secret for a managed local IOS user "
            "(username NAME secret, write memory) and vault it",
            run=_rotate_ios_secret,
            params={
                "service_credential": "the credential the action logs in with",
                "credential": "the managed credential to rotate (default: the session's)",
            },
            platforms=("cisco-ios",),
            check=check_service_params,
        )
    )


def _looks_like_kex_failure(error: str) -> bool:
    return GROUP1 in error or "no matching" in error.lower()


def _probe(resource: Resource) -> ServerOffer | None:
    """The server's KEXINIT, read in a fresh event loop (in a worker thread when called from
    a running loop, as the SSH actions do); ``None`` when the probe fails."""
    host, port = resource.address, resource.port_for("ssh") or 22
    if not host:
        return None

    def run() -> ServerOffer:
        return asyncio.run(probe_kexinit(host, port, PROBE_TIMEOUT))

    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return run()
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(run).result()
    except (OSError, TimeoutError, KexinitError) as exc:
        log.info("KEXINIT probe of %s failed: %s", resource.name, exc)
        return None


def _client_offer(resource: Resource, config: Config) -> dict[str, list[str]]:
    """What asyncssh offers this resource: its defaults plus this plugin's additions."""
    offer = {kind: algs.defaults(kind) for kind in algs.KINDS}
    for kind, found in algs.legacy_algorithms(resource, config).items():
        offer[kind] += [n for n in found if n not in offer[kind]]
    return offer


def _mismatch(
    resource: Resource, config: Config, offer: ServerOffer
) -> tuple[str, list[str], list[str]] | None:
    """The first kind (in negotiation order) the two sides share nothing in."""
    client = _client_offer(resource, config)
    server = {
        "kex": offer.kex,
        "server_host_key": offer.host_key,
        "encryption": offer.ciphers,
        "mac": offer.macs,
    }
    for kind, (_, label, _, _) in algs.KINDS.items():
        if server[kind] and not set(client[kind]) & set(server[kind]):
            return label, client[kind], server[kind]
    return None
