"""``pamcore demo``: fill an initialised instance with demo users, resources and rules."""

from __future__ import annotations

import click

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_rows
from pamcore.demo import seed_demo


@click.command()
@with_json
@pass_cli
def demo(cli: CliContext) -> None:
    """Seed demo data (alice, bob, carol, dave, erin, frank; web01, db01, core-sw1, dc01)."""
    summary = seed_demo(cli.core)
    if not summary.seeded:
        emit_message(f"{summary.reason}; nothing was changed", cli.as_json)
        return
    if cli.as_json:
        emit_message(
            "demo data created",
            True,
            users=dict(summary.users),
            password=summary.password,
            resources=summary.resources,
            activities=summary.activities,
            profiles=summary.profiles,
            policies=summary.policies,
        )
        return
    emit_rows([{"user": u, "role": r} for u, r in summary.users], ("user", "role"), False)
    click.echo(f"\nresources:  {', '.join(summary.resources)}")
    click.echo(f"activities: {', '.join(summary.activities)}")
    click.echo(f"profiles:   {', '.join(summary.profiles)}")
    click.echo(f"policies:   {', '.join(summary.policies)}")
    click.echo(
        f"\nEvery demo user signs in with the password '{summary.password}'.\n"
        "It is for this demo only: never use the demo on an instance that matters.\n"
        "Try: pamcore sessions create --as alice --activity 'Linux Admin' --resource web01"
    )
