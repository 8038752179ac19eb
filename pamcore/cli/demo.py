"""``pamcore demo``: fill an initialised instance with demo users, resources and rules, and
run the demo's SSH target (``start``, ``stop``, ``clean``; ``make run`` and ``make clean-demo``
call them)."""

from __future__ import annotations

import click

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_message, emit_rows
from pamcore.demo import ALREADY_SEEDED, seed_demo, why_not_seed
from pamcore.demo_target import (
    DEFAULT_PORT,
    PREFIX,
    DemoTarget,
    clean_demo,
    load_target,
    prepare_target,
    start_target,
    stop_target,
    target_unavailable,
)
from pamcore.errors import PamError


@click.group(invoke_without_command=True)
@click.option(
    "--target-port",
    type=click.IntRange(1, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="Loopback port of the demo's SSH target (web01).",
)
@with_json
@pass_cli
def demo(cli: CliContext, target_port: int) -> None:
    """Seed demo data (alice, bob, carol, dave, erin, frank; web01, db01, core-sw1, dc01).

    As root with openssh-server, web01 is the demo's own sshd on 127.0.0.1 (files in the
    instance's demo-target folder; `pamcore demo start` runs it) and Linux Admin creates
    and removes an ephemeral account named pamdemo-... on this machine."""
    if click.get_current_context().invoked_subcommand is not None:
        return
    if reason := why_not_seed(cli.core):
        emit_message(f"{reason}; nothing was changed", cli.as_json)
        return
    target: DemoTarget | None = None
    if (missing := target_unavailable(cli.core)) is None:
        target = prepare_target(cli.core.config.instance_path, target_port)
    summary = seed_demo(cli.core, target=target)
    if not summary.seeded:  # another process seeded it meanwhile
        emit_message(f"{summary.reason}; nothing was changed", cli.as_json)
        return
    where = (
        f"web01 is the demo SSH target on 127.0.0.1 port {target.port} (pamcore demo start); "
        f"its sessions create accounts named {PREFIX}... on this machine"
        if target
        else f"web01 is a placeholder: the demo SSH target {missing}"
    )
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
            target_port=target.port if target else None,
        )
        return
    emit_rows([{"user": u, "role": r} for u, r in summary.users], ("user", "role"), False)
    click.echo(f"\nresources:  {', '.join(summary.resources)}")
    click.echo(f"activities: {', '.join(summary.activities)}")
    click.echo(f"profiles:   {', '.join(summary.profiles)}")
    click.echo(f"policies:   {', '.join(summary.policies)}")
    click.echo(f"\n{where}.")
    click.echo(
        f"\nEvery demo user signs in with the password '{summary.password}'.\n"
        "It is for this demo only: never use the demo on an instance that matters.\n"
        "Try: pamcore sessions create --as alice --activity 'Linux Admin' --resource web01"
    )


def _target(cli: CliContext) -> DemoTarget | None:
    return load_target(cli.core.config.instance_path)


@demo.command("start")
@with_json
@pass_cli
def start(cli: CliContext) -> None:
    """Start the demo's SSH target in the background (nothing when it runs already)."""
    target = _target(cli)
    if target is None:
        emit_message("this instance has no demo SSH target; nothing to start", cli.as_json)
        return
    try:
        pid = start_target(target)
    except PamError as exc:
        raise click.ClickException(str(exc)) from None
    emit_message(f"demo SSH target listening on 127.0.0.1 port {target.port}", cli.as_json, pid=pid)


@demo.command("stop")
@with_json
@pass_cli
def stop(cli: CliContext) -> None:
    """Stop the demo's SSH target."""
    target = _target(cli)
    stopped = target is not None and stop_target(target)
    emit_message(
        "demo SSH target stopped" if stopped else "the demo SSH target was not running",
        cli.as_json,
    )


@demo.command("clean")
@with_json
@pass_cli
def clean(cli: CliContext) -> None:
    """Remove what the demo made on this machine: its SSH target (stopped, its folder
    deleted) and the pamdemo-... accounts this instance's sessions created."""
    if why_not_seed(cli.core) != ALREADY_SEEDED:
        raise click.ClickException("this instance has no demo data; nothing was removed")
    removed = clean_demo(cli.core)
    emit_message(
        f"demo SSH target removed; accounts deleted: {', '.join(removed) or 'none'}",
        cli.as_json,
        accounts=removed,
    )
