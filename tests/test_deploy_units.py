"""The example systemd units in ``deploy/systemd`` run commands this pamcore has, with
options it accepts, so docs/deploy.md does not rot when a command changes."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

import click
import pytest

from pamcore.cli.main import build_cli

UNITS = sorted((Path(__file__).parents[1] / "deploy" / "systemd").glob("*.service"))


def _service(unit: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(unit.read_text())
    return parser["Service"]


def _command(unit: Path, key: str) -> list[str]:
    """The unit's command line, with the instance specifier as ``systemctl start
    pamcore-worker@1`` would fill it."""
    return shlex.split(_service(unit)[key].replace("%i", "1"))


def test_a_unit_for_each_process_kind() -> None:
    commands = {_command(u, "ExecStart")[1] for u in UNITS}
    assert commands == {"web", "proxy", "worker"}


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.name)
def test_unit_commands_parse(unit: Path) -> None:
    """Every ``ExecStart``/``ExecStartPre`` names a pamcore command whose options parse."""
    service = _service(unit)
    assert service["User"] == "pamcore"
    assert service["Environment"].startswith("PAMCORE_INSTANCE=")
    cli = build_cli()
    for key in ("ExecStartPre", "ExecStart"):
        program, *args = _command(unit, key)
        assert program.endswith("/bin/pamcore")
        command: click.Command = cli
        while isinstance(command, click.Group) and args and not args[0].startswith("-"):
            name = args.pop(0)
            found = command.get_command(click.Context(command), name)
            assert found is not None, f"{unit.name}: pamcore has no command {name!r}"
            command = found
        assert not isinstance(command, click.Group), f"{unit.name}: {key} names a group"
        command.make_context(command.name or "", args)  # raises on an unknown option
