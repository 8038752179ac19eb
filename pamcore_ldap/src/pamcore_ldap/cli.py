"""``pamcore ldap``: check what the directory says about someone, refresh every directory
user, and keep the service account's password in the vault."""

from __future__ import annotations

import sys

import click

from pamcore.clikit import CliContext, emit_record, pass_cli, with_json
from pamcore.errors import ConfigurationError, NotFound, ValidationError
from pamcore.identitykit import directory_usernames
from pamcore_ldap.directory import connect
from pamcore_ldap.settings import PLUGIN, LdapSettings, ldap_settings
from pamcore_ldap.signin import describe, service_password, sync_user


@click.group("ldap")
def ldap_group() -> None:
    """Sign-in with an LDAP or Active Directory account."""


@ldap_group.command("test")
@click.argument("username")
@with_json
@pass_cli
def test_user(cli: CliContext, username: str) -> None:
    """Show the DN the directory gives USERNAME, their groups and the mapped role."""
    settings = _settings(cli)
    with cli.core.reader() as db:
        password = service_password(cli.core, db, settings)
    with connect(settings, password) as directory:
        person = directory.find(username.strip().lower())
    if person is None:
        raise NotFound(f"the directory has no entry for '{username}' ({settings.user_filter})")
    emit_record(describe(person, settings), cli.as_json)


@ldap_group.command("sync")
@with_json
@pass_cli
def sync(cli: CliContext) -> None:
    """Refresh every user the directory created: groups and role, or disable those the
    directory disabled or deleted (their sessions are canceled)."""
    settings = _settings(cli)
    with cli.core.reader() as db:
        password = service_password(cli.core, db, settings)
        names = directory_usernames(db, PLUGIN)
    outcomes: dict[str, list[str]] = {"refreshed": [], "disabled": [], "gone": []}
    with connect(settings, password) as directory:
        for name in names:
            with cli.core.unit() as db:
                outcomes[sync_user(cli.core, db, directory, settings, name)].append(name)
    emit_record(outcomes, cli.as_json)


@ldap_group.command("set-service-password")
@click.option("--password-stdin", is_flag=True, help="Read it from standard input (one line).")
@pass_cli
def set_service_password(cli: CliContext, password_stdin: bool) -> None:
    """Keep the service account's password in the vault (never in pamcore.toml)."""
    settings = _settings(cli)
    if password_stdin:
        password = sys.stdin.read().removesuffix("\n").removesuffix("\r")
    else:
        password = click.prompt("Service password", hide_input=True, confirmation_prompt=True)
    if not password:
        raise ValidationError("password", "nothing was given")
    core = cli.core
    with core.unit() as db:
        try:
            core.vault.replace(
                core.vault.named(db, settings.service_password_secret), password, core.now()
            )
        except NotFound:
            core.vault.store(db, password, name=settings.service_password_secret)
        core.audit(db, "system:cli", "ldap.service_password_set", target=settings.service_dn)
    click.echo(f"stored the service password as vault secret '{settings.service_password_secret}'")


def _settings(cli: CliContext) -> LdapSettings:
    settings = ldap_settings(cli.core.config)
    if settings is None:
        raise ConfigurationError(f"pamcore.toml has no [plugins.{PLUGIN}] url: LDAP is not set up")
    return settings
