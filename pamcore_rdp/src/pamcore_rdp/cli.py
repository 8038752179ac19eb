"""``pamcore rdp certificate``: the RDP listener's certificate for operators (after
``pamcore init``, to publish the fingerprint or check a configured pair)."""

from __future__ import annotations

import click

from pamcore.clikit import CliContext, emit_record, pass_cli, with_json
from pamcore_rdp.certs import certificate_info


@click.group()
def rdp() -> None:
    """The RDP proxy."""


@rdp.command()
@with_json
@pass_cli
def certificate(cli: CliContext) -> None:
    """Show the listener's TLS certificate (creating the self-signed one if missing)."""
    found = certificate_info(cli.core)
    emit_record(
        {
            "source": found.source,
            "certificate": str(found.cert_path),
            "key": str(found.key_path),
            "sha256": found.sha256,
            "sha1": found.sha1,
            "subject": found.subject,
            "not_after": found.not_after.isoformat(),
        },
        cli.as_json,
    )
