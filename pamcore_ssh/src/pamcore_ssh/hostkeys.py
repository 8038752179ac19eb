"""Host keys: the proxy's own (created once, kept in the vault) and how a target's key is
written and compared (OpenSSH public-key lines, ``SHA256:`` fingerprints)."""

from __future__ import annotations

import logging

import asyncssh
from sqlalchemy.exc import IntegrityError

from pamcore.core import Pamcore
from pamcore.errors import NotFound

log = logging.getLogger(__name__)

#: Name of the vault secret holding the proxy's private host key (OpenSSH format).
PROXY_HOST_KEY = "ssh-proxy-host-key"


def key_line(key: asyncssh.SSHKey) -> str:
    """``ssh-ed25519 AAAA...``: the OpenSSH public-key line, without a comment."""
    return " ".join(key.export_public_key("openssh").decode().split()[:2])


def fingerprint(key: asyncssh.SSHKey) -> str:
    """``SHA256:...`` as ``ssh-keygen -l`` prints it (what ``UserKey.fingerprint`` holds)."""
    return key.get_fingerprint("sha256")


def proxy_host_key(core: Pamcore) -> asyncssh.SSHKey:
    """The proxy's ed25519 host key: read from the vault, or created (by ``pamcore init``;
    on first start for an instance initialised before).

    Every proxy node shares it, so users' ``known_hosts`` stay valid behind a balancer.
    """
    with core.unit() as db:
        try:
            return asyncssh.import_private_key(
                core.vault.reveal(core.vault.named(db, PROXY_HOST_KEY))
            )
        except NotFound:
            pass
    key = asyncssh.generate_private_key("ssh-ed25519")
    try:
        with core.unit() as db:
            text = key.export_private_key("openssh").decode()
            core.vault.store(db, text, name=PROXY_HOST_KEY)
            core.audit(db, "system:ssh-proxy", "ssh.host_key_created", key=fingerprint(key))
        log.info("ssh proxy host key created: %s", fingerprint(key))
        return key
    except IntegrityError:  # another node created it first: use theirs
        with core.unit() as db:
            return asyncssh.import_private_key(
                core.vault.reveal(core.vault.named(db, PROXY_HOST_KEY))
            )
