"""``pamcore sessions``: request, decide, extend, reveal and end activity sessions.

``--as USER`` acts for a user: the CLI is the operator's console of the instance (it holds
the master key), so it is trusted to speak for users, and every action is audited under
the user's name. Without ``--as``, commands act as the console (an administrator).
"""

from __future__ import annotations

import sys
import time

import click

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_record, emit_rows, split_names
from pamcore.lifecycle import Status
from pamcore.model import User
from pamcore.presenters import session_detail, session_row
from pamcore.services import access, approvals
from pamcore.services import sessions as svc
from pamcore.services.common import CONSOLE, Actor, by_name, get_session, worker_name
from pamcore.services.ending import complete_ending

ROW_COLUMNS = ("id", "status_label", "activity", "resources", "requester", "start", "remaining")


def _user(db, name: str) -> User:  # type: ignore[no-untyped-def]
    return by_name(db, User, name)


def _actor(db, name: str | None) -> Actor:  # type: ignore[no-untyped-def]
    return _user(db, name) if name else CONSOLE


as_option = click.option("--as", "as_user", metavar="USER", help="Act as this user.")
required_as = click.option(
    "--as", "as_user", metavar="USER", required=True, help="The user who acts."
)


@click.group()
def sessions() -> None:
    """Request, approve, extend, reveal and end activity sessions."""


@sessions.command("create")
@required_as
@click.option("--activity", required=True, help="Activity name (case-insensitive).")
@click.option(
    "--resource",
    "resources",
    multiple=True,
    required=True,
    help="Resource name; repeat or separate with commas.",
)
@click.option("--notes", default="", help="Why you need access.")
@click.option("--ticket", default="", help="Change or incident ticket number.")
@click.option("--start", default=None, help="'now' (default) or an ISO time with zone.")
@with_json
@pass_cli
def create(
    cli: CliContext,
    as_user: str,
    activity: str,
    resources: tuple[str, ...],
    notes: str,
    ticket: str,
    start: str | None,
) -> None:
    """Request a session (the wizard's steps as options)."""
    core = cli.core
    with core.unit() as db:
        request = svc.SessionRequest(
            activity=activity,
            resources=tuple(split_names(resources)),
            notes=notes,
            ticket=ticket,
            start=svc.parse_start(start),
        )
        session = svc.create_session(core, db, _user(db, as_user), request)
        record = session_detail(session, core.now())
    emit_message(
        f"session #{record['id']} created: {record['status_label']}"
        + (f" (waiting for {record['waiting_for']})" if record["waiting_for"] else ""),
        cli.as_json,
        session=record,
    )


@sessions.command("list")
@as_option
@click.option("--view", type=click.Choice(list(svc.VIEWS)), default="active", show_default=True)
@click.option("--limit", type=click.IntRange(1, 10000), default=200, show_default=True)
@with_json
@pass_cli
def list_(cli: CliContext, as_user: str | None, view: str, limit: int) -> None:
    """List sessions you may see (all of them for the console, admins and auditors)."""
    core = cli.core
    with core.reader() as db:
        rows = [
            session_row(s, core.now())
            for s in svc.list_sessions(db, _actor(db, as_user), view, limit)
        ]
    emit_rows(rows, ROW_COLUMNS, cli.as_json, empty=f"no {view} sessions")


@sessions.command("show")
@click.argument("session_id", type=int)
@as_option
@with_json
@pass_cli
def show(cli: CliContext, session_id: int, as_user: str | None) -> None:
    """Show one session with its approvals."""
    core = cli.core
    with core.reader() as db:
        record = session_detail(svc.show_session(db, _actor(db, as_user), session_id), core.now())
    emit_record(record, cli.as_json)


@sessions.command("queue")
@required_as
@with_json
@pass_cli
def queue(cli: CliContext, as_user: str) -> None:
    """Sessions waiting for your approval."""
    core = cli.core
    with core.reader() as db:
        rows = [
            session_detail(s, core.now())
            for s in approvals.approval_queue(core, db, _user(db, as_user))
        ]
    emit_rows(
        rows,
        (
            "id",
            "activity",
            "resources",
            "requester",
            "current_tier",
            "ticket",
            "notes",
            "scheduled_start",
        ),
        cli.as_json,
        empty="nothing waits for you",
    )


def _decide(cli: CliContext, session_id: int, as_user: str, comment: str, approve: bool) -> None:
    core = cli.core
    decide = approvals.approve_session if approve else approvals.deny_session
    with core.unit() as db:
        session = decide(core, db, _user(db, as_user), session_id, comment)
        record = session_detail(session, core.now())
    verb = "approved" if approve else "denied"
    emit_message(
        f"session #{session_id} {verb}: now {record['status_label']}", cli.as_json, session=record
    )


@sessions.command("approve")
@click.argument("session_id", type=int)
@required_as
@click.option("--comment", default="")
@with_json
@pass_cli
def approve(cli: CliContext, session_id: int, as_user: str, comment: str) -> None:
    """Approve a session at its current tier."""
    _decide(cli, session_id, as_user, comment, approve=True)


@sessions.command("deny")
@click.argument("session_id", type=int)
@required_as
@click.option("--comment", default="")
@with_json
@pass_cli
def deny(cli: CliContext, session_id: int, as_user: str, comment: str) -> None:
    """Deny a session; the requester sees your comment."""
    _decide(cli, session_id, as_user, comment, approve=False)


@sessions.command("cancel")
@click.argument("session_id", type=int)
@as_option
@click.option("--reason", default="")
@with_json
@pass_cli
def cancel(cli: CliContext, session_id: int, as_user: str | None, reason: str) -> None:
    """Cancel a session (before or during it)."""
    core = cli.core
    with core.unit() as db:
        actor = _actor(db, as_user)
        status = svc.cancel_session(core, db, actor, session_id, reason).status
    if status == Status.ENDING:  # it was running: remove what was created for it, now
        status = complete_ending(core, session_id, worker_name(), actor.username) or status
    emit_message(f"session #{session_id} {status.value}", cli.as_json, status=status.value)


@sessions.command("end")
@click.argument("session_id", type=int)
@as_option
@with_json
@pass_cli
def end(cli: CliContext, session_id: int, as_user: str | None) -> None:
    """End an Available or Active session now; post-session actions run."""
    core = cli.core
    with core.unit() as db:
        actor = _actor(db, as_user)
        svc.end_session(core, db, actor, session_id)
    # The post-session actions run now, outside the transaction (else the scheduler would).
    complete_ending(core, session_id, worker_name(), actor.username)
    with core.reader() as db:
        session = get_session(db, session_id)
        status, reason = Status(session.status), session.outcome_reason
    emit_message(
        f"session #{session_id} {status.value} ({reason})", cli.as_json, status=status.value
    )


@sessions.command("extend")
@click.argument("session_id", type=int)
@as_option
@with_json
@pass_cli
def extend(cli: CliContext, session_id: int, as_user: str | None) -> None:
    """Extend by the profile's increment (when 5 minutes or less remain)."""
    core = cli.core
    with core.unit() as db:
        ext = svc.extend_session(core, db, _actor(db, as_user), session_id)
    emit_message(
        f"session #{session_id} extended until {ext.new_end:%Y-%m-%d %H:%M} UTC; "
        f"{ext.extensions_left} extension(s) left",
        cli.as_json,
        new_end=ext.new_end,
        extensions_left=ext.extensions_left,
    )


@sessions.command("password")
@click.argument("session_id", type=int)
@required_as
@click.option("--purpose", type=click.Choice(access.PURPOSES), default="view", show_default=True)
@with_json
@pass_cli
def password(cli: CliContext, session_id: int, as_user: str, purpose: str) -> None:
    """Reveal the session's password for its view window (audited).

    On a terminal it is shown with a countdown and then erased; piped, it is printed once.
    """
    core = cli.core
    with core.unit() as db:
        shown = access.reveal_password(core, db, _user(db, as_user), session_id, purpose)
    if cli.as_json:
        emit_message(
            "revealed",
            True,
            username=shown.username,
            password=str(shown.password),
            seconds=shown.seconds,
            expires_at=shown.expires_at,
        )
        return
    if not sys.stdout.isatty():
        click.echo(str(shown.password))
        return
    click.echo(f"password for {shown.username} (hidden again in {shown.seconds} s):")
    try:
        for left in range(shown.seconds, 0, -1):
            click.echo(f"\r  {shown.password}   [{left:>3}s] ", nl=False)
            time.sleep(1)
    finally:
        click.echo("\r\033[2K  (hidden)")
