"""``pamcore audit``: list, verify and anchor the keyed audit chain; rotate its key."""

from __future__ import annotations

import click

from pamcore.audit import Anchor
from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_rows
from pamcore.errors import AuditChainBroken
from pamcore.presenters import audit_row
from pamcore.services import audit_keys, audit_log
from pamcore.services.common import CONSOLE


@click.group("audit")
def audit() -> None:
    """Read, verify and anchor the audit log (a chain MACed with keys kept outside the
    database)."""


@audit.command("list")
@click.option("--session", "session_id", type=int, help="Only this session's events.")
@click.option("--actor", help="Only events by this actor.")
@click.option("--action", help="Only actions starting with this (e.g. 'session.').")
@click.option("--limit", type=click.IntRange(1, audit_log.MAX_LIMIT), default=50, show_default=True)
@with_json
@pass_cli
def list_events(
    cli: CliContext, session_id: int | None, actor: str | None, action: str | None, limit: int
) -> None:
    """The newest events first."""
    wanted = audit_log.AuditFilter(
        actor=actor or "", action=action or "", session_id=session_id, limit=limit
    )
    with cli.core.reader() as db:
        rows = [audit_row(e) for e in audit_log.list_events(db, CONSOLE, wanted)]
    emit_rows(
        rows,
        ("id", "at", "actor", "action", "target", "session", "details"),
        cli.as_json,
        empty="no audit events",
    )


@audit.command("verify")
@click.option(
    "--anchor",
    "anchor_line",
    metavar="LINE",
    help="A line 'pamcore audit anchor' printed earlier: also check that its event is "
    "still there, unchanged (catches a chain cut or rebuilt since, even with the key).",
)
@with_json
@pass_cli
def verify(cli: CliContext, anchor_line: str | None) -> None:
    """Recompute the chain under the audit keys; name every edited, inserted or deleted
    event."""
    anchor = Anchor.parse(anchor_line) if anchor_line is not None else None
    with cli.core.reader() as db:
        checked, problems = audit_log.check_chain(cli.core, db, CONSOLE, anchor)
    if problems:
        if cli.as_json:
            emit_message(
                "audit chain broken", True, checked=checked, problems=[str(p) for p in problems]
            )
        else:
            for problem in problems:
                click.echo(f"BROKEN {problem}")
        raise AuditChainBroken(
            f"{len(problems)} problem(s) in {checked} events; the log was tampered with"
        )
    emit_message(
        f"audit chain intact: {checked} events verified", cli.as_json, checked=checked, problems=[]
    )


@audit.command("anchor")
@with_json
@pass_cli
def anchor(cli: CliContext) -> None:
    """Print the chain head (event id and hash) as one line to keep outside pamcore.

    Nobody can later make the anchored event hash the same again, even with the audit key:
    'pamcore audit verify --anchor LINE' then catches a cut or rebuilt chain. Keep the line
    where the database's writers cannot reach, and take one regularly (cron), e.g.:

    \b
      pamcore audit anchor | logger -t pamcore-audit    (syslog, forwarded off the host)
      pamcore audit anchor | mail -s "pamcore audit anchor" audit@example.com
      or paste it into a ticket.
    """
    with cli.core.reader() as db:
        head = audit_log.take_anchor(cli.core, db, CONSOLE)
    emit_message(str(head), cli.as_json, anchor=str(head), event=head.event_id, hash=head.hash)


@audit.command("rotate-key")
@with_json
@pass_cli
def rotate_key(cli: CliContext) -> None:
    """Add a new audit key that MACs the events from now on, while pamcore runs.

    Old keys stay in the keyring for good (the events they MACed need them); back up the
    keyring file after a rotation."""
    rotation = audit_keys.rotate_key(cli.core, CONSOLE)
    emit_message(
        f"audit key rotated to {rotation.new_key} (was {rotation.old_key}); back up "
        f"{cli.core.audit_keys.path}",
        cli.as_json,
        new_key=rotation.new_key,
        old_key=rotation.old_key,
    )
