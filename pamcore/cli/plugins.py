"""``pamcore plugins``: which plugins are loaded, what they implement, and which failed.

It works without an initialised instance (no database is opened): the plugins depend only
on the installed distributions and the instance's plugins folder, so an operator can check
an installation before ``pamcore init``. It exits 0 even when plugins failed — it is the
tool to diagnose them — but says clearly which failed and at what stage.
"""

from __future__ import annotations

from typing import Any

import click

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_record, emit_rows
from pamcore.config import Config, load_config
from pamcore.plugins import PluginHost, build_plugin_host

PREFIX = "pamcore_"


def _host(obj: CliContext) -> tuple[PluginHost, Config]:
    """The open core's host and configuration when there is one; otherwise the instance's
    configuration and a host built as the core would build it (installed plugins and the
    instance's plugins folder), in lenient mode so that failures are listed instead of
    raised."""
    if obj._core is not None:
        return obj._core.plugins, obj._core.config
    config = load_config(obj.instance)
    return build_plugin_host(strict=False, plugins_dir=config.plugins_dir), config


def _exercise_registrations(host: PluginHost, root: click.Group | None) -> None:
    """Registration hooks run lazily; run them now so their failures (a protocol registered
    twice, a clashing command name) are in the report."""
    host.hooks.protocols()
    host.hooks.actions()
    host.hooks.resource_settings()
    if root is not None:
        from pamcore.cli.main import plugin_commands

        plugin_commands(host)  # records a clash with a core command; the real CLI is untouched


def collect_report(
    host: PluginHost, config: Config, root: click.Group | None = None
) -> dict[str, Any]:
    """Plugins, protocols with the port each proxy listens on in ``config``, failures."""
    _exercise_registrations(host, root)
    plugins = [
        {"name": i.name, "version": i.version, "source": i.source, "hooks": i.hooks}
        for i in host.plugin_infos()
    ]
    protocols = [
        {
            "name": p.name,
            "port": p.port(config),
            "default_port": p.default_port,
            "listener": p.listener_factory is not None,
        }
        for p in sorted(host.hooks.protocols().values(), key=lambda p: p.name)
    ]
    failures = [{"plugin": f.name, "stage": f.stage, "error": f.error} for f in host.failures]
    return {"plugins": plugins, "protocols": protocols, "failures": failures}


@click.command("plugins")
@with_json
@pass_cli
@click.pass_context
def plugins(ctx: click.Context, obj: CliContext) -> None:
    """List plugins: name, version, source, hooks implemented, and failures."""
    root = ctx.find_root().command
    host, config = _host(obj)
    report = collect_report(host, config, root if isinstance(root, click.Group) else None)
    if obj.as_json:
        emit_record(report, as_json=True)
        return
    rows = [
        {**p, "hooks": [h.removeprefix(PREFIX) for h in p["hooks"]] or ["-"]}
        for p in report["plugins"]
    ]
    emit_rows(rows, ["name", "version", "source", "hooks"], as_json=False)
    click.echo("")
    if report["protocols"]:
        names = ", ".join(
            f"{p['name']} (port {p['port']}{'' if p['listener'] else ', no listener yet'})"
            for p in report["protocols"]
        )
        click.echo(f"protocols: {names}")
    else:
        click.echo("protocols: none installed (pip install pamcore-ssh, pamcore-rdp)")
    failures = report["failures"]
    if not failures:
        click.echo("failures: none")
        return
    click.echo(
        f"failures: {len(failures)} — these plugins (or parts of them) are NOT active; "
        "PAMCORE_STRICT_PLUGINS=1 turns this into an error"
    )
    emit_rows(failures, ["plugin", "stage", "error"], as_json=False)
