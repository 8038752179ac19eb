"""``pamcore vault``: the master keyring (status, rotate-key, retire-key)."""

from __future__ import annotations

import click

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_rows
from pamcore.services import vault_keys
from pamcore.services.common import CONSOLE


@click.group("vault")
def vault() -> None:
    """The vault's master keyring."""


@vault.command("status")
@with_json
@pass_cli
def status(cli: CliContext) -> None:
    """Each key: how many secrets it protects, whether it is active; then any secret the
    keyring cannot decrypt."""
    core = cli.core
    rows = [
        {
            "key": use.key_id,
            "secrets": use.secrets,
            "active": "yes" if use.active else "",
            "state": _state(use),
        }
        for use in vault_keys.key_uses(core, CONSOLE)
    ]
    lost = vault_keys.undecryptable_secrets(core, CONSOLE)
    if cli.as_json:
        emit_message(
            "vault status",
            True,
            keyring=str(core.vault.source or "PAMCORE_MASTER_KEY"),
            keys=rows,
            undecryptable=[vars(u) for u in lost],
        )
        return
    click.echo(f"keyring: {core.vault.source or 'PAMCORE_MASTER_KEY (one fixed key)'}")
    emit_rows(rows, ["key", "secrets", "active", "state"], False)
    for item in lost:
        click.echo(f"UNDECRYPTABLE secret {item.secret_id} ({item.name or '-'}): {item.reason}")


def _state(use: vault_keys.KeyUse) -> str:
    if not use.in_keyring:
        return "MISSING from the keyring: restore it"
    if use.active:
        return "encrypts new secrets"
    if use.secrets:
        return "still in use: run 'pamcore vault rotate-key' to finish"
    return "unused: may be retired"


@vault.command("rotate-key")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_json
@pass_cli
def rotate_key(cli: CliContext, yes: bool) -> None:
    """Add a new active master key and re-encrypt every secret under it, while pamcore runs.

    Safe to interrupt: every secret stays readable, and running it again finishes the
    rotation. The old key stays in the keyring until 'pamcore vault retire-key'."""
    core = cli.core
    if not yes:
        click.confirm("Re-encrypt every secret under a new master key?", abort=True)
    rotation = vault_keys.rotate_key(
        core, CONSOLE, progress=lambda line: click.echo(line, err=True)
    )
    done = "rotated to" if rotation.added else "finished the rotation to"
    message = f"master key {done} {rotation.key_id}; {rotation.reencrypted} secrets re-encrypted"
    if rotation.undecryptable:
        listed = ", ".join(str(i) for i in rotation.undecryptable)
        message += f"; NOT decryptable, left as they were: secrets {listed}"
    if rotation.retirable:
        message += (
            f"; back up {core.vault.source}, then retire the old key "
            f"({', '.join(rotation.retirable)}) with 'pamcore vault retire-key ID'"
        )
    emit_message(
        message,
        cli.as_json,
        key=rotation.key_id,
        added=rotation.added,
        secrets=rotation.reencrypted,
        undecryptable=list(rotation.undecryptable),
        retirable=list(rotation.retirable),
    )


@vault.command("retire-key")
@click.argument("key_id")
@with_json
@pass_cli
def retire_key(cli: CliContext, key_id: str) -> None:
    """Remove a former key from the keyring once no secret uses it."""
    vault_keys.retire_key(cli.core, key_id, CONSOLE)
    emit_message(f"key {key_id} retired from {cli.core.vault.source}", cli.as_json, key=key_id)
