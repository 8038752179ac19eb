"""``pamcore users`` and ``pamcore groups``: the people of an instance.

Passwords are read from a hidden prompt or from stdin (``--password-stdin``), never from
an argument, which would land in shell history and ``ps`` output.
"""

from __future__ import annotations

import datetime as dt
import sys

import click

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_record, emit_rows, split_names
from pamcore.errors import ValidationError
from pamcore.model import Role
from pamcore.presenters import group_record, token_record, user_record
from pamcore.services import directory as svc
from pamcore.services import signins, tokens
from pamcore.services.common import CONSOLE

USER_COLUMNS = ("username", "display_name", "role", "active", "locked_until", "groups")
GROUP_COLUMNS = ("name", "description", "members")

password_stdin_option = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from standard input: all of it but one trailing newline "
    "(\\n or \\r\\n), so `echo PASS |` gives PASS; other spaces are kept.",
)
confirm_delete = click.confirmation_option(prompt="Delete it? This cannot be undone")


def read_secret(label: str, from_stdin: bool, *, multiline: bool = False) -> str:
    """A secret from stdin (one line, or all of it for a key) or a hidden, confirmed prompt."""
    if from_stdin:
        text = sys.stdin.read()
        secret = text if multiline else text.removesuffix("\n").removesuffix("\r")
    else:
        secret = click.prompt(label, hide_input=True, confirmation_prompt=True)
    if not secret.strip():
        raise ValidationError(label.lower(), "nothing was given")
    return secret


# -- users ----------------------------------------------------------------------------------


@click.group()
def users() -> None:
    """People who request, approve, administer or audit."""


@users.command("list")
@with_json
@pass_cli
def list_users(cli: CliContext) -> None:
    """List users."""
    with cli.core.reader() as db:
        rows = [user_record(u) for u in svc.list_users(db)]
    emit_rows(rows, USER_COLUMNS, cli.as_json, empty="no users yet: pamcore users create NAME")


@users.command("show")
@click.argument("username")
@with_json
@pass_cli
def show_user(cli: CliContext, username: str) -> None:
    """Show one user."""
    with cli.core.reader() as db:
        record = user_record(svc.get_user(db, username))
    emit_record(record, cli.as_json)


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.USER.value)
@click.option("--display-name", default="", help="Full name shown in the dashboard.")
@click.option("--email", default="")
@click.option("--prompt-password", is_flag=True, help="Set a password at a hidden prompt.")
@password_stdin_option
@with_json
@pass_cli
def create_user(
    cli: CliContext,
    username: str,
    role: str,
    display_name: str,
    email: str,
    prompt_password: bool,
    password_stdin: bool,
) -> None:
    """Create a user (without a password unless asked: set one later with set-password)."""
    password = (
        read_secret("Password", password_stdin) if prompt_password or password_stdin else None
    )
    with cli.core.unit() as db:
        user = svc.create_user(
            cli.core,
            db,
            CONSOLE,
            username,
            role=Role(role),
            display_name=display_name,
            email=email,
            password=password,
        )
        record = user_record(user)
    hint = "" if password else f"; set a password with 'pamcore users set-password {username}'"
    emit_message(f"created user {record['username']}{hint}", cli.as_json, user=record)


@users.command("update")
@click.argument("username")
@click.option("--display-name")
@click.option("--email")
@with_json
@pass_cli
def update_user(
    cli: CliContext, username: str, display_name: str | None, email: str | None
) -> None:
    """Change a user's display name or e-mail."""
    with cli.core.unit() as db:
        user = svc.update_user(
            cli.core, db, CONSOLE, username, display_name=display_name, email=email
        )
        record = user_record(user)
    emit_message(f"updated user {record['username']}", cli.as_json, user=record)


@users.command("set-password")
@click.argument("username")
@password_stdin_option
@with_json
@pass_cli
def set_password(cli: CliContext, username: str, password_stdin: bool) -> None:
    """Set a user's password (hidden prompt, or --password-stdin); also unlocks."""
    password = read_secret("Password", password_stdin)
    with cli.core.unit() as db:
        name = svc.set_password(cli.core, db, CONSOLE, username, password).username
    emit_message(f"password of {name} set", cli.as_json, username=name)


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice([r.value for r in Role]))
@with_json
@pass_cli
def set_role(cli: CliContext, username: str, role: str) -> None:
    """Make a user a user, approver, admin or auditor."""
    with cli.core.unit() as db:
        name = svc.set_role(cli.core, db, CONSOLE, username, role).username
    emit_message(f"{name} is now {role}", cli.as_json, username=name, role=role)


@users.command("unlock")
@click.argument("username")
@with_json
@pass_cli
def unlock(cli: CliContext, username: str) -> None:
    """Lift a lockout after too many failed sign-ins."""
    with cli.core.unit() as db:
        name = svc.unlock_user(cli.core, db, CONSOLE, username).username
    emit_message(f"{name} unlocked", cli.as_json, username=name)


@users.command("sign-out-everywhere")
@click.argument("username")
@with_json
@pass_cli
def sign_out_everywhere(cli: CliContext, username: str) -> None:
    """End every dashboard sign-in of a user at once (a lost laptop, a leaked cookie)."""
    with cli.core.unit() as db:
        name = signins.sign_out_everywhere(cli.core, db, CONSOLE, username).username
    emit_message(f"{name} is signed out of every browser", cli.as_json, username=name)


@users.command("disable")
@click.argument("username")
@with_json
@pass_cli
def disable(cli: CliContext, username: str) -> None:
    """Stop a user from signing in; their history stays."""
    with cli.core.unit() as db:
        name = svc.set_active(cli.core, db, CONSOLE, username, False).username
    emit_message(f"{name} disabled", cli.as_json, username=name, active=False)


@users.command("enable")
@click.argument("username")
@with_json
@pass_cli
def enable(cli: CliContext, username: str) -> None:
    """Let a disabled user sign in again."""
    with cli.core.unit() as db:
        name = svc.set_active(cli.core, db, CONSOLE, username, True).username
    emit_message(f"{name} enabled", cli.as_json, username=name, active=True)


@users.command("delete")
@click.argument("username")
@confirm_delete
@with_json
@pass_cli
def delete_user(cli: CliContext, username: str) -> None:
    """Delete a user who never took part in a session (disable the others)."""
    with cli.core.unit() as db:
        svc.delete_user(cli.core, db, CONSOLE, username)
    emit_message(f"deleted user {username}", cli.as_json, username=username)


@users.group("token")
def token() -> None:
    """API tokens for scripts using the REST API (shown once, stored hashed)."""


@token.command("create")
@click.argument("username")
@click.option("--name", required=True, help="What the token is for, e.g. 'deploy script'.")
@click.option("--expires-days", type=click.IntRange(1, 3650), help="Expire after N days.")
@with_json
@pass_cli
def create_token(cli: CliContext, username: str, name: str, expires_days: int | None) -> None:
    """Create a token; it is printed once, store it now."""
    core = cli.core
    expires = core.now() + dt.timedelta(days=expires_days) if expires_days else None
    with core.unit() as db:
        issued = tokens.create_token(core, db, CONSOLE, username, name, expires)
        record = token_record(issued.record)
    emit_message(
        f"token {record['prefix']}... for {username} (shown once, store it now):\n{issued.token}",
        cli.as_json,
        token=issued.token,
        **record,
    )


@token.command("list")
@click.argument("username")
@with_json
@pass_cli
def list_tokens(cli: CliContext, username: str) -> None:
    """A user's tokens: prefix, name, created, expiry, last use."""
    with cli.core.reader() as db:
        rows = [token_record(t) for t in tokens.list_tokens(db, CONSOLE, username)]
    emit_rows(
        rows,
        ("id", "prefix", "name", "created_at", "expires_at", "last_used_at"),
        cli.as_json,
        empty=f"{username} has no API tokens",
    )


@token.command("revoke")
@click.argument("username")
@click.argument("token_id", type=int)
@with_json
@pass_cli
def revoke_token(cli: CliContext, username: str, token_id: int) -> None:
    """Revoke a token (its id from 'token list'); scripts using it are refused."""
    with cli.core.unit() as db:
        tokens.revoke_token(cli.core, db, CONSOLE, username, token_id)
    emit_message(f"revoked token #{token_id} of {username}", cli.as_json, id=token_id)


# -- groups ---------------------------------------------------------------------------------


@click.group()
def groups() -> None:
    """Groups of users, for access policies and approval tiers."""


@groups.command("list")
@with_json
@pass_cli
def list_groups(cli: CliContext) -> None:
    """List groups."""
    with cli.core.reader() as db:
        rows = [group_record(g) for g in svc.list_groups(db)]
    emit_rows(rows, GROUP_COLUMNS, cli.as_json, empty="no groups yet: pamcore groups create NAME")


@groups.command("show")
@click.argument("name")
@with_json
@pass_cli
def show_group(cli: CliContext, name: str) -> None:
    """Show one group and its members."""
    with cli.core.reader() as db:
        record = group_record(svc.get_group(db, name))
    emit_record(record, cli.as_json)


@groups.command("create")
@click.argument("name")
@click.option("--description", default="")
@click.option("--member", "members", multiple=True, help="A username (repeat, or a,b,c).")
@with_json
@pass_cli
def create_group(cli: CliContext, name: str, description: str, members: tuple[str, ...]) -> None:
    """Create a group."""
    with cli.core.unit() as db:
        group = svc.create_group(
            cli.core, db, CONSOLE, name, description, members=split_names(members)
        )
        record = group_record(group)
    emit_message(f"created group {record['name']}", cli.as_json, group=record)


@groups.command("update")
@click.argument("name")
@click.option("--name", "new_name", help="Rename the group.")
@click.option("--description")
@with_json
@pass_cli
def update_group(cli: CliContext, name: str, new_name: str | None, description: str | None) -> None:
    """Rename a group or change its description."""
    with cli.core.unit() as db:
        group = svc.update_group(
            cli.core, db, CONSOLE, name, new_name=new_name, description=description
        )
        record = group_record(group)
    emit_message(f"updated group {record['name']}", cli.as_json, group=record)


@groups.command("delete")
@click.argument("name")
@confirm_delete
@with_json
@pass_cli
def delete_group(cli: CliContext, name: str) -> None:
    """Delete a group no policy or approval tier uses."""
    with cli.core.unit() as db:
        svc.delete_group(cli.core, db, CONSOLE, name)
    emit_message(f"deleted group {name}", cli.as_json, name=name)


@groups.command("add-member")
@click.argument("name")
@click.argument("username")
@with_json
@pass_cli
def add_member(cli: CliContext, name: str, username: str) -> None:
    """Add a user to a group."""
    with cli.core.unit() as db:
        record = group_record(svc.add_member(cli.core, db, CONSOLE, name, username))
    emit_message(f"added {username} to {record['name']}", cli.as_json, group=record)


@groups.command("remove-member")
@click.argument("name")
@click.argument("username")
@with_json
@pass_cli
def remove_member(cli: CliContext, name: str, username: str) -> None:
    """Remove a user from a group."""
    with cli.core.unit() as db:
        record = group_record(svc.remove_member(cli.core, db, CONSOLE, name, username))
    emit_message(f"removed {username} from {record['name']}", cli.as_json, group=record)
