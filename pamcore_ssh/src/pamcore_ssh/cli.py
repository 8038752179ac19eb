"""``pamcore ssh fingerprint``: the SSH proxy's host key for operators, to publish it again
(users compare it with what their ``ssh`` asks them to trust)."""

from __future__ import annotations

import click

from pamcore.clikit import CliContext, emit_record, pass_cli, with_json
from pamcore_ssh.hostkeys import fingerprint, proxy_host_key


@click.group()
def ssh() -> None:
    """The SSH proxy."""


@ssh.command("fingerprint")
@with_json
@pass_cli
def show_fingerprint(cli: CliContext) -> None:
    """Show the proxy's host key fingerprint (creating the key if missing)."""
    key = proxy_host_key(cli.core)
    emit_record(
        {"algorithm": key.get_algorithm(), "sha256": fingerprint(key)},
        cli.as_json,
    )
