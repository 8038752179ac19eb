"""The admin command groups end to end: ``pamcore init``, then users, groups, resources,
credentials, activities, profiles and policies through click, on a real instance."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli

PASSWORD = "Cli-Secret-Pa55word-99"


@pytest.fixture(scope="module")
def cli() -> click.Group:
    return build_cli()


@pytest.fixture
def run(cli: click.Group, tmp_path: Path):  # type: ignore[no-untyped-def]
    instance = tmp_path / "instance"

    def invoke(*args: str, input: str | None = None, code: int = 0) -> Result:
        result = CliRunner().invoke(
            cli, ["--instance", str(instance), *args], input=input, obj=CliContext(instance=None)
        )
        assert result.exit_code == code, (args, result.output, result.exception)
        assert "Traceback" not in result.output
        return result

    invoke("init")
    return invoke


def test_users_and_groups(run) -> None:  # type: ignore[no-untyped-def]
    run("users", "create", "alice", "--role", "approver", "--email", "alice@example.org")
    run("users", "set-password", "alice", "--password-stdin", input=PASSWORD + "\n")
    # hidden prompt with confirmation when stdin is not named
    run("users", "create", "bob", "--prompt-password", input=f"{PASSWORD}\n{PASSWORD}\n")
    out = run("users", "create", "Bad+Name", code=2).output
    assert "error: username: must not contain '+'" in out
    run("groups", "create", "Linux Admins", "--member", "alice,bob")
    run("groups", "remove-member", "linux-admins", "bob")
    users = json.loads(run("--json", "users", "list").output)
    assert [(u["username"], u["role"], u["has_password"]) for u in users] == [
        ("alice", "approver", True),
        ("bob", "user", True),
    ]
    shown = json.loads(run("groups", "show", "Linux Admins", "--json").output)
    assert shown["members"] == ["alice"]
    out = run("users", "sign-out-everywhere", "alice").output
    assert "alice is signed out of every browser" in out
    run("users", "sign-out-everywhere", "nobody", code=3)
    run("users", "disable", "bob")
    run("users", "set-role", "bob", "auditor")
    table = run("users", "list").output
    assert table.splitlines()[0].split()[:3] == ["USERNAME", "DISPLAY_NAME", "ROLE"]
    assert "auditor" in table
    assert PASSWORD not in table
    run("users", "delete", "bob", "--yes")
    run("users", "show", "bob", code=3)


def test_inventory_and_secrets(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("resources", "create", "db01", "--address", "127.0.0.1")
    run(
        "resources",
        "create",
        "dc01",
        "--address",
        "10.0.0.5",
        "--platform",
        "windows",
        "--protocol",
        "rdp",
    )
    record = json.loads(run("resources", "show", "dc01", "--json").output)
    assert record["protocols"] == ["rdp:3389"]
    run("resources", "update", "db01", "--protocol", "ssh:2222", "--trust-on-first-use")
    assert "ssh:2222" in run("resources", "list").output
    out = run("resources", "set-setting", "db01", "nope.key", "1", code=2).output
    assert "not a known setting" in out
    run("resources", "settings")

    run(
        "credentials",
        "create",
        "db01 root",
        "--username",
        "root",
        "--resource",
        "db01",
        "--managed",
        "--password-stdin",
        input=PASSWORD,
    )
    key = tmp_path / "id_test"
    key.write_text(
        "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAAkeybody\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    run("credentials", "set-key", "db01 root", "--key-file", str(key))
    run("credentials", "set-password", "db01 root", input=f"{PASSWORD}2\n{PASSWORD}2\n")
    outputs = [
        run("credentials", "show", "db01 root").output,
        run("--json", "credentials", "list").output,
        run("--json", "audit", "list").output,
    ]
    shown = json.loads(run("credentials", "show", "db01 root", "--json").output)
    assert shown["has_password"] and shown["has_private_key"]
    for text in outputs:
        assert PASSWORD not in text and "AAAAkeybody" not in text


def test_activities_profiles_policies(run) -> None:  # type: ignore[no-untyped-def]
    run("users", "create", "alice")
    run("users", "create", "carol", "--role", "approver")
    run("groups", "create", "Linux Admins", "--member", "carol")
    run("resources", "create", "web01", "--address", "127.0.0.1")
    run("activities", "create", "Linux Admin", "--login-template", "{user}-{random}")
    run(
        "activities",
        "add-action",
        "Linux Admin",
        "pre",
        "audit-note",
        "--params",
        '{"message": "hello"}',
    )
    run("activities", "add-action", "Linux Admin", "post", "audit-note")
    out = run(
        "activities", "add-action", "Linux Admin", "pre", "audit-note", "--params", "{x", code=2
    ).output
    assert "error: params: not valid JSON" in out
    run("activities", "remove-action", "Linux Admin", "post", "1")
    activity = json.loads(run("activities", "show", "linux-admin", "--json").output)
    assert activity["pre_actions"] == ['1. audit-note {"message": "hello"}']
    assert activity["post_actions"] == []

    run(
        "profiles",
        "create",
        "Approval",
        "--max-duration",
        "60",
        "--view-password",
        "--escalation-minutes",
        "10",
        "--escalation-user",
        "carol",
    )
    run("profiles", "add-tier", "Approval", "--group", "Linux Admins")
    out = run(
        "profiles", "add-tier", "Approval", "--user", "carol", "--approvals", "2", code=2
    ).output
    assert "can never be reached" in out
    out = run("profiles", "update", "Approval", "--warning-minutes", "90", code=2).output
    assert "warning_minutes: must be 1-60" in out
    profile = json.loads(run("profiles", "show", "Approval", "--json").output)
    assert profile["approval_tiers"] == ["1: 1 of the Linux Admins group"]
    assert profile["allow_view_password"] is True
    assert profile["approver_may_decide_several_tiers"] is False
    run("profiles", "update", "Approval", "--approver-may-decide-several-tiers")
    profile = json.loads(run("profiles", "show", "Approval", "--json").output)
    assert profile["approver_may_decide_several_tiers"] is True

    run(
        "policies",
        "create",
        "alice web",
        "--profile",
        "Approval",
        "--user",
        "alice",
        "--activity",
        "Linux Admin",
        "--resource",
        "web01",
    )
    run("policies", "disable", "alice web")
    policy = json.loads(run("policies", "show", "alice web", "--json").output)
    assert policy["enabled"] is False and policy["users"] == ["alice"]
    out = run("profiles", "delete", "Approval", "--yes", code=2).output
    assert "alice web" in out
    run("policies", "delete", "alice web", "--yes")
    run("profiles", "delete", "Approval", "--yes")
