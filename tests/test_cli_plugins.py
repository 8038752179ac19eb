"""``pamcore plugins``: works without an instance, lists hooks, reports failures, --json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.config import load_config

BROKEN = "raise RuntimeError('plugin exploded at import')\n"
CLASHING = """
import click
from pamcore import hookimpl

@click.command("users")
def users():
    pass

@hookimpl
def pamcore_register_commands(register):
    register(users)
"""


def run(instance: Path, *args: str) -> Result:
    return CliRunner().invoke(build_cli(), list(args), obj=CliContext(instance=instance))


def test_lists_plugins_without_an_initialised_instance(tmp_path: Path) -> None:
    result = run(tmp_path / "never-initialised", "plugins")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["NAME", "VERSION", "SOURCE", "HOOKS"]
    local_auth = next(line for line in lines if line.startswith("pamcore.defaults.local_auth"))
    assert local_auth.split()[1:] == ["0.1.0", "built-in", "authenticate"]
    assert "failures: none" in lines
    assert not (tmp_path / "never-initialised").exists(), "listing must not create an instance"


def test_installed_protocol_plugins_show_up(tmp_path: Path) -> None:
    """The repository's own distributions are installed in the development environment."""
    result = run(tmp_path, "plugins")
    ssh = next(line for line in result.output.splitlines() if line.startswith("ssh "))
    assert "pamcore-ssh (entry point)" in ssh
    assert "register_protocols" in ssh
    assert "ssh (port 4422)" in result.output


def test_protocols_show_the_ports_the_instance_is_configured_with(tmp_path: Path) -> None:
    (tmp_path / "pamcore.toml").write_text("[pamcore.proxy_ports]\nssh = 52222\nrdp = 53389\n")
    result = run(tmp_path, "plugins")
    assert "ssh (port 52222)" in result.output and "rdp (port 53389)" in result.output
    report = json.loads(run(tmp_path, "plugins", "--json").output)
    ports = {p["name"]: (p["port"], p["default_port"]) for p in report["protocols"]}
    assert ports["ssh"] == (52222, 4422) and ports["rdp"] == (53389, 4489)


def test_json_output(tmp_path: Path) -> None:
    for args in (["plugins", "--json"], ["--json", "plugins"]):
        report = json.loads(run(tmp_path, *args).output)
        assert set(report) == {"plugins", "protocols", "failures"}
        names = {p["name"]: p for p in report["plugins"]}
        assert names["pamcore.defaults.approval"]["hooks"] == [
            "pamcore_approval_veto",
            "pamcore_approvers",
        ]
        assert report["failures"] == []


def test_failures_are_listed_and_exit_is_still_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "exploding.py").write_text(BROKEN)
    (plugins_dir / "clashing.py").write_text(CLASHING)
    monkeypatch.setenv("PAMCORE_PLUGINS_DIR", str(plugins_dir))
    result = run(tmp_path, "plugins")
    assert result.exit_code == 0, result.output
    assert "failures: 2 — these plugins (or parts of them) are NOT active" in result.output
    rows = result.output.split("failures: 2", 1)[1].splitlines()[2:]
    assert rows[0].split(None, 2) == [
        "exploding",
        "load",
        "RuntimeError: plugin exploded at import",
    ]
    assert rows[1].split(None, 2) == [
        "users",
        "pamcore_register_commands",
        "ConfigurationError: command 'users' already exists",
    ]
    report = json.loads(run(tmp_path, "plugins", "--json").output)
    assert {
        "plugin": "exploding",
        "stage": "load",
        "error": "RuntimeError: plugin exploded at import",
    } in report["failures"]


def test_strict_env_does_not_hide_the_listing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command is the diagnosis tool: strict mode must not stop it from listing."""
    plugins_dir = tmp_path / "plugins"
    plugins_dir.mkdir()
    (plugins_dir / "exploding.py").write_text(BROKEN)
    monkeypatch.setenv("PAMCORE_PLUGINS_DIR", str(plugins_dir))
    monkeypatch.setenv("PAMCORE_STRICT_PLUGINS", "1")
    result = run(tmp_path, "plugins")
    assert result.exit_code == 0, result.output
    assert "exploding" in result.output


def test_uses_the_open_cores_host(tmp_path: Path) -> None:
    from pamcore.plugins import build_plugin_host

    class Embedded:
        pass

    host = build_plugin_host(strict=False, entry_points=False)
    host.register(Embedded(), name="embedded_only")

    class FakeCore:  # only what the command touches: the host and the configuration
        plugins = host
        config = load_config(tmp_path)

        def dispose(self) -> None:
            pass

    obj = CliContext(instance=tmp_path)
    obj.set_core(FakeCore())  # type: ignore[arg-type]
    result = CliRunner().invoke(build_cli(), ["plugins"], obj=obj)
    assert result.exit_code == 0, result.output
    assert "embedded_only" in result.output
    assert "ssh " not in result.output  # that host loads no entry points


def test_actions_lists_each_type_with_its_parameters(tmp_path: Path) -> None:
    """What ``activities add-action --help`` sends people to, without an instance."""
    result = run(tmp_path / "never-initialised", "actions")
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert "audit-note (any): Write a note to the audit log for each resource of the session" in (
        lines
    )
    assert "    message: the text to record" in lines
    listed = json.loads(run(tmp_path, "actions", "--json").output)
    create = next(a for a in listed if a["name"] == "linux-create-account")
    assert set(create["params"]) == {"service_credential", "sudo_group"}
    assert create["platforms"] == "linux"
