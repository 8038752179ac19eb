"""What a plugin's ``pamcore`` subcommands use (``pamcore_register_commands``): the
command context with the core, the ``--json`` switch, and the one way records are printed,
so a plugin's output reads like the core's."""

from __future__ import annotations

from pamcore.cli.context import CliContext, pass_cli, with_json
from pamcore.cli.output import emit_record

__all__ = ["CliContext", "emit_record", "pass_cli", "with_json"]
