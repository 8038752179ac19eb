"""``pamcore resources`` and ``pamcore credentials``: what is protected, and the vaulted
accounts used to reach it. Secrets come from a hidden prompt, stdin or a key file."""

from __future__ import annotations

from pathlib import Path

import click

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_record, emit_rows
from pamcore.cli.users import confirm_delete, password_stdin_option, read_secret
from pamcore.errors import ValidationError
from pamcore.model import Platform
from pamcore.presenters import credential_record, resource_record
from pamcore.services import inventory as svc
from pamcore.services.common import CONSOLE

RESOURCE_COLUMNS = ("name", "address", "platform", "protocols", "description")
CREDENTIAL_COLUMNS = ("name", "username", "resource", "managed", "has_password", "has_private_key")
SETTING_COLUMNS = ("setting", "default", "help")

protocol_option = click.option(
    "--protocol",
    "protocols",
    multiple=True,
    metavar="NAME[:PORT]",
    help="A protocol the resource speaks, e.g. ssh:22 (repeat for more).",
)
platform_choice = click.Choice([p.value for p in Platform])


def _split_setting(name: str) -> tuple[str, str]:
    plugin, dot, key = name.partition(".")
    if not dot or not plugin or not key:
        raise ValidationError(
            "setting", f"'{name}' is not PLUGIN.KEY (see 'pamcore resources settings')"
        )
    return plugin, key


# -- resources ------------------------------------------------------------------------------


@click.group()
def resources() -> None:
    """Servers and devices users work on."""


@resources.command("list")
@with_json
@pass_cli
def list_resources(cli: CliContext) -> None:
    """List resources."""
    with cli.core.reader() as db:
        rows = [resource_record(r) for r in svc.list_resources(db)]
    emit_rows(
        rows, RESOURCE_COLUMNS, cli.as_json, empty="no resources yet: pamcore resources create"
    )


@resources.command("show")
@click.argument("name")
@with_json
@pass_cli
def show_resource(cli: CliContext, name: str) -> None:
    """Show one resource with its protocols, host key and plugin settings."""
    with cli.core.reader() as db:
        record = resource_record(svc.get_resource(db, name))
    emit_record(record, cli.as_json)


@resources.command("create")
@click.argument("name")
@click.option("--address", required=True, help="Host name or IP address.")
@click.option("--platform", type=platform_choice, default=Platform.LINUX.value)
@protocol_option
@click.option("--description", default="")
@click.option("--host-key", help="Pinned SSH host key line, or sha256:FINGERPRINT.")
@click.option(
    "--trust-on-first-use", is_flag=True, help="Pin the first SSH host key or RDP certificate seen."
)
@with_json
@pass_cli
def create_resource(
    cli: CliContext,
    name: str,
    address: str,
    platform: str,
    protocols: tuple[str, ...],
    description: str,
    host_key: str | None,
    trust_on_first_use: bool,
) -> None:
    """Register a resource (default protocol: ssh)."""
    with cli.core.unit() as db:
        resource = svc.create_resource(
            cli.core,
            db,
            CONSOLE,
            name,
            address,
            platform=platform,
            protocols=protocols or ("ssh",),
            description=description,
            host_key=host_key,
            trust_on_first_use=trust_on_first_use,
        )
        record = resource_record(resource)
    emit_message(f"created resource {record['name']}", cli.as_json, resource=record)


@resources.command("update")
@click.argument("name")
@click.option("--name", "new_name", help="Rename the resource.")
@click.option("--address")
@click.option("--platform", type=platform_choice)
@protocol_option
@click.option("--description")
@click.option("--host-key", help="Pin this host key; '' unpins.")
@click.option("--trust-on-first-use/--no-trust-on-first-use", default=None)
@with_json
@pass_cli
def update_resource(
    cli: CliContext,
    name: str,
    new_name: str | None,
    address: str | None,
    platform: str | None,
    protocols: tuple[str, ...],
    description: str | None,
    host_key: str | None,
    trust_on_first_use: bool | None,
) -> None:
    """Change a resource; --protocol replaces the whole list."""
    changes = svc.ResourceChanges(
        name=new_name,
        address=address,
        platform=platform,
        description=description,
        protocols=protocols or None,
        host_key=host_key,
        trust_on_first_use=trust_on_first_use,
    )
    with cli.core.unit() as db:
        record = resource_record(svc.update_resource(cli.core, db, CONSOLE, name, changes))
    emit_message(f"updated resource {record['name']}", cli.as_json, resource=record)


@resources.command("delete")
@click.argument("name")
@confirm_delete
@with_json
@pass_cli
def delete_resource(cli: CliContext, name: str) -> None:
    """Delete a resource no session ever covered."""
    with cli.core.unit() as db:
        svc.delete_resource(cli.core, db, CONSOLE, name)
    emit_message(f"deleted resource {name}", cli.as_json, name=name)


@resources.command("settings")
@with_json
@pass_cli
def list_settings(cli: CliContext) -> None:
    """List the per-resource settings the installed plugins understand."""
    rows = [
        {"setting": f"{s.plugin}.{s.key}", "default": s.default, "help": s.help}
        for s in svc.available_settings(cli.core)
    ]
    emit_rows(rows, SETTING_COLUMNS, cli.as_json, empty="no installed plugin has resource settings")


@resources.command("set-setting")
@click.argument("name")
@click.argument("setting", metavar="PLUGIN.KEY")
@click.argument("value")
@with_json
@pass_cli
def set_setting(cli: CliContext, name: str, setting: str, value: str) -> None:
    """Set a plugin setting on a resource (checked by the plugin that owns it)."""
    plugin, key = _split_setting(setting)
    with cli.core.unit() as db:
        record = resource_record(svc.set_setting(cli.core, db, CONSOLE, name, plugin, key, value))
    emit_message(f"{record['name']}: {setting} set", cli.as_json, resource=record)


@resources.command("unset-setting")
@click.argument("name")
@click.argument("setting", metavar="PLUGIN.KEY")
@with_json
@pass_cli
def unset_setting(cli: CliContext, name: str, setting: str) -> None:
    """Remove a plugin setting from a resource (the plugin's default applies again)."""
    plugin, key = _split_setting(setting)
    with cli.core.unit() as db:
        record = resource_record(svc.unset_setting(cli.core, db, CONSOLE, name, plugin, key))
    emit_message(f"{record['name']}: {setting} removed", cli.as_json, resource=record)


# -- credentials ----------------------------------------------------------------------------


key_file_option = click.option(
    "--key-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Read a private key (PEM or OpenSSH) from this file.",
)


@click.group()
def credentials() -> None:
    """Vaulted accounts: passwords and private keys pamcore logs in with."""


@credentials.command("list")
@with_json
@pass_cli
def list_credentials(cli: CliContext) -> None:
    """List credentials (never their secrets)."""
    with cli.core.reader() as db:
        rows = [credential_record(c) for c in svc.list_credentials(db)]
    emit_rows(rows, CREDENTIAL_COLUMNS, cli.as_json, empty="no credentials yet")


@credentials.command("show")
@click.argument("name")
@with_json
@pass_cli
def show_credential(cli: CliContext, name: str) -> None:
    """Show a credential: whether a password or key is stored, never what it is."""
    with cli.core.reader() as db:
        record = credential_record(svc.get_credential(db, name))
    emit_record(record, cli.as_json)


@credentials.command("create")
@click.argument("name")
@click.option("--username", required=True, help="The account name on the resource.")
@click.option("--resource", help="The resource it belongs to (none for a domain account).")
@click.option("--managed", is_flag=True, help="pamcore rotates its password after sessions.")
@click.option("--description", default="")
@password_stdin_option
@click.option("--no-password", is_flag=True, help="Store only a private key (--key-file).")
@key_file_option
@with_json
@pass_cli
def create_credential(
    cli: CliContext,
    name: str,
    username: str,
    resource: str | None,
    managed: bool,
    description: str,
    password_stdin: bool,
    no_password: bool,
    key_file: Path | None,
) -> None:
    """Store a credential; the password is asked at a hidden prompt unless --password-stdin."""
    password = None if no_password else read_secret("Password", password_stdin)
    private_key = key_file.read_text() if key_file else None
    with cli.core.unit() as db:
        credential = svc.create_credential(
            cli.core,
            db,
            CONSOLE,
            name,
            username,
            resource=resource,
            password=password,
            private_key=private_key,
            managed=managed,
            description=description,
        )
        record = credential_record(credential)
    emit_message(f"created credential {record['name']}", cli.as_json, credential=record)


@credentials.command("update")
@click.argument("name")
@click.option("--name", "new_name", help="Rename the credential.")
@click.option("--username")
@click.option("--resource", help="Attach to this resource; '' detaches.")
@click.option("--managed/--unmanaged", default=None)
@click.option("--description")
@with_json
@pass_cli
def update_credential(
    cli: CliContext,
    name: str,
    new_name: str | None,
    username: str | None,
    resource: str | None,
    managed: bool | None,
    description: str | None,
) -> None:
    """Change a credential's account name, resource or flags (secrets: set-password, set-key)."""
    changes = svc.CredentialChanges(
        name=new_name,
        username=username,
        resource=resource,
        managed=managed,
        description=description,
    )
    with cli.core.unit() as db:
        record = credential_record(svc.update_credential(cli.core, db, CONSOLE, name, changes))
    emit_message(f"updated credential {record['name']}", cli.as_json, credential=record)


@credentials.command("set-password")
@click.argument("name")
@password_stdin_option
@with_json
@pass_cli
def set_credential_password(cli: CliContext, name: str, password_stdin: bool) -> None:
    """Replace the stored password (hidden prompt, or --password-stdin)."""
    password = read_secret("Password", password_stdin)
    with cli.core.unit() as db:
        record = credential_record(
            svc.set_credential_password(cli.core, db, CONSOLE, name, password)
        )
    emit_message(f"password of {record['name']} replaced", cli.as_json, credential=record)


@credentials.command("set-key")
@click.argument("name")
@key_file_option
@with_json
@pass_cli
def set_credential_key(cli: CliContext, name: str, key_file: Path | None) -> None:
    """Store a private key, from --key-file or standard input."""
    private_key = key_file.read_text() if key_file else read_secret("Key", True, multiline=True)
    with cli.core.unit() as db:
        record = credential_record(svc.set_credential_key(cli.core, db, CONSOLE, name, private_key))
    emit_message(f"private key of {record['name']} stored", cli.as_json, credential=record)


@credentials.command("delete")
@click.argument("name")
@confirm_delete
@with_json
@pass_cli
def delete_credential(cli: CliContext, name: str) -> None:
    """Delete a credential and its secrets (refused while an activity uses it)."""
    with cli.core.unit() as db:
        svc.delete_credential(cli.core, db, CONSOLE, name)
    emit_message(f"deleted credential {name}", cli.as_json, name=name)
