"""``pamcore actions``: the pre- and post-session action types the installed plugins bring,
with the parameters each takes (what ``activities add-action --params`` accepts)."""

from __future__ import annotations

import click

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_rows
from pamcore.config import load_config
from pamcore.plugins import build_plugin_host


@click.command("actions")
@with_json
@pass_cli
def actions(cli: CliContext) -> None:
    """List action types: name, platforms, what it does, its parameters."""
    if cli._core is not None:
        host = cli._core.plugins
    else:  # no database needed: the types depend only on the installed plugins
        host = build_plugin_host(strict=False, plugins_dir=load_config(cli.instance).plugins_dir)
    rows = [
        {
            "name": a.name,
            "platforms": ", ".join(a.platforms) or "any",
            "description": a.description,
            "params": dict(a.params),
        }
        for a in sorted(host.hooks.actions().values(), key=lambda a: a.name)
    ]
    if cli.as_json:
        emit_rows(rows, [], as_json=True)
        return
    for row in rows:
        click.echo(f"{row['name']} ({row['platforms']}): {row['description']}")
        for param, help_text in row["params"].items():
            click.echo(f"    {param}: {help_text}")
