"""What a command imports at start: a listing opens the core without Alembic, Flask or any
plugin; ``--help`` still lists every command, plugins' groups included; and strict plugin mode
still fails on a broken plugin once a command needs the plugins."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pamcore.cli.context import CliContext
from pamcore.cli.main import COMMANDS, build_cli, main, plugin_commands
from pamcore.errors import ConfigurationError
from pamcore.plugins import ENTRY_POINT_GROUP, build_plugin_host

PAMCORE = str(Path(sys.executable).parent / "pamcore")

#: Runs ``pamcore ARGS...`` in this process, then writes the imported modules' names.
LISTING_MODULES = """
import json, sys
from pamcore.cli.main import main
try:
    main(sys.argv[2:])
finally:
    with open(sys.argv[1], "w") as out:
        json.dump(sorted(sys.modules), out)
"""


@pytest.fixture
def instance(tmp_path: Path, empty_db_url: str) -> Path:
    path = tmp_path / "instance"
    result = CliRunner().invoke(
        build_cli(),
        ["--instance", str(path), "init", "--database-url", empty_db_url],
        obj=CliContext(instance=None),
    )
    assert result.exit_code == 0, result.output
    return path


def plugin_packages() -> set[str]:
    """The top-level packages of the installed plugins."""
    return {
        ep.value.split(".", 1)[0].split(":", 1)[0]
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
    }


def test_sessions_list_imports_no_alembic_flask_or_plugin(instance: Path, tmp_path: Path) -> None:
    modules_file = tmp_path / "modules.json"
    pamcore = ["--instance", str(instance), "sessions", "list"]
    done = subprocess.run(
        [sys.executable, "-c", LISTING_MODULES, str(modules_file), *pamcore],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "no active sessions\n"
    modules = json.loads(modules_file.read_text())
    assert "pamcore.cli.sessions" in modules  # the listing did run here
    roots = {name.split(".", 1)[0] for name in modules}
    assert plugin_packages()  # the check below means something
    assert roots & ({"alembic", "flask", "werkzeug"} | plugin_packages()) == set()
    assert [m for m in modules if m.startswith(("pamcore.web", "pamcore.defaults"))] == []


def test_help_lists_every_command_with_plugins_groups() -> None:
    done = subprocess.run([PAMCORE, "--help"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    listed = {
        line.split()[0]
        for line in done.stdout.split("Commands:", 1)[1].splitlines()
        if line.startswith("  ")
    }
    from_plugins = set(plugin_commands(build_plugin_host(strict=False)))
    assert {"ssh", "rdp"} <= from_plugins
    assert listed == set(COMMANDS) | from_plugins


def test_strict_mode_fails_on_a_broken_plugin_when_plugins_are_needed(
    instance: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "broken_ep.py").write_text("raise RuntimeError('boom at import')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    broken = importlib.metadata.EntryPoint("broken_ep", "broken_ep", ENTRY_POINT_GROUP)

    def entry_points(**params: Any) -> list[importlib.metadata.EntryPoint]:
        return [broken] if params.get("group") == ENTRY_POINT_GROUP else []

    monkeypatch.setattr(importlib.metadata, "entry_points", entry_points)
    monkeypatch.setenv("PAMCORE_STRICT_PLUGINS", "1")

    def pamcore(*args: str) -> int:
        with pytest.raises(SystemExit) as exited:
            main(["--instance", str(instance), *args])
        return int(exited.value.code or 0)

    assert pamcore("sessions", "list") == 0  # a listing calls no hook: no plugin is loaded
    assert capsys.readouterr().out == "no active sessions\n"
    expected = "error: plugin broken_ep failed at load: RuntimeError: boom at import"
    for args in (["no-such-group"], ["--help"], ["users", "create", "dave"]):
        # A name that is no core command, the list of all commands, and the first hook
        # the core calls (a user's creation is audited, and the audit notifies plugins).
        assert pamcore(*args) == ConfigurationError.exit_code, args
        assert expected in capsys.readouterr().err
