"""The ``pamcore`` command: a thin click front over the services (one module per group)."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from pathlib import Path
from typing import Any

import click

from pamcore import __version__
from pamcore.cli.context import CliContext
from pamcore.config import LOG_FORMATS
from pamcore.errors import PamError
from pamcore.logs import TEXT_FORMAT, use_json_logs
from pamcore.plugins import PluginHost, build_plugin_host

log = logging.getLogger(__name__)

#: command name -> "module:attribute"; a module is imported when its command is looked up
#: (run or shown in help), so each command pays only for its own imports.
COMMANDS = {
    "init": "pamcore.cli.instance:init",
    "run": "pamcore.cli.instance:run",
    "worker": "pamcore.cli.instance:worker",
    "proxy": "pamcore.cli.proxy:proxy",
    "web": "pamcore.cli.web:web",
    "db": "pamcore.cli.db:db",
    "sessions": "pamcore.cli.sessions:sessions",
    "audit": "pamcore.cli.audit:audit",
    "users": "pamcore.cli.users:users",
    "groups": "pamcore.cli.users:groups",
    "resources": "pamcore.cli.resources:resources",
    "credentials": "pamcore.cli.resources:credentials",
    "activities": "pamcore.cli.policies:activities",
    "profiles": "pamcore.cli.policies:profiles",
    "policies": "pamcore.cli.policies:policies",
    "demo": "pamcore.cli.demo:demo",
    "vault": "pamcore.cli.vault:vault",
    "plugins": "pamcore.cli.plugins:plugins",
    "actions": "pamcore.cli.actions:actions",
}


def plugin_commands(host: PluginHost) -> dict[str, click.Command]:
    """The commands plugins register; one named like a core command is refused and recorded
    as that plugin's failure (the core's command stays)."""
    probe = click.Group("pamcore", commands=[click.Command(name) for name in COMMANDS])
    host.hooks.register_commands(probe)
    return {name: command for name, command in probe.commands.items() if name not in COMMANDS}


class PamcoreGroup(click.Group):
    """Imports a core command's module when the command is looked up, and loads the plugins
    only for a name that is not a core command (or for the list of all commands); turns every
    :class:`PamError` into one line on stderr and its exit code."""

    _plugins_added = False

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._add_plugin_commands()
        return sorted(set(COMMANDS) | set(self.commands))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands:
            if cmd_name in COMMANDS:
                module, attr = COMMANDS[cmd_name].split(":")
                self.add_command(getattr(importlib.import_module(module), attr), name=cmd_name)
            else:
                self._add_plugin_commands()
        return self.commands.get(cmd_name)

    def _add_plugin_commands(self) -> None:
        # A host of its own here, since no instance is open yet.
        if not self._plugins_added:
            self._plugins_added = True
            for name, command in plugin_commands(build_plugin_host()).items():
                self.add_command(command, name=name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except PamError as exc:
            click.echo(f"error: {exc}", err=True)
            ctx.exit(exc.exit_code)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except Exception as exc:  # the last line of defence: no traceback for users
            log.exception("unexpected error")
            click.echo(
                f"error: unexpected {type(exc).__name__}; run with PAMCORE_DEBUG=1 for details",
                err=True,
            )
            if os.environ.get("PAMCORE_DEBUG"):
                raise
            ctx.exit(70)


def build_cli() -> click.Group:
    @click.group(cls=PamcoreGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.option(
        "--instance",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="PAMCORE_INSTANCE",
        help="Instance folder (default ./instance, or $PAMCORE_INSTANCE).",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")
    @click.option(
        "--log-format",
        type=click.Choice(LOG_FORMATS),
        envvar="PAMCORE_LOG_FORMAT",
        help="Log lines as text or one JSON object per line (default: log_format in "
        "pamcore.toml, else text).",
    )
    @click.version_option(__version__, prog_name="pamcore")
    @click.pass_context
    def cli(
        ctx: click.Context, instance: Path | None, as_json: bool, log_format: str | None
    ) -> None:
        """pamcore: approved, time-boxed, audited privileged access."""
        obj = ctx.ensure_object(CliContext)
        obj.instance = instance or obj.instance
        obj.as_json = as_json or obj.as_json
        obj.log_format = log_format or obj.log_format
        if obj.log_format == "json":
            use_json_logs()
        ctx.call_on_close(obj.close)

    return cli


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(
        level=os.environ.get("PAMCORE_LOG_LEVEL", "WARNING").upper(),
        format=TEXT_FORMAT,
        stream=sys.stderr,
    )
    try:
        # Outside a command's invocation (``--help``), loading a plugin in strict mode can fail.
        build_cli().main(args=argv, prog_name="pamcore", obj=CliContext(instance=None))
    except PamError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(exc.exit_code)
