"""``pamcore init``, ``db``, ``worker`` and ``run``: an instance from nothing to running."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy.engine import make_url

import pamcore
from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.config import load_config
from pamcore.core import Pamcore, open_core
from pamcore.lifecycle import Status
from pamcore.model import ActivitySession, LoginMode
from pamcore.registry import ProtocolHandler
from pamcore.revisions import head_revision
from pamcore.runtime import Runtime, SchedulerService, proxy_services, run_tick
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import builders as b
from pamcore.testing import require_pg_admin_url

PAMCORE = str(Path(sys.executable).parent / "pamcore")


def invoke(instance: Path, *args: str) -> Result:
    return CliRunner().invoke(
        build_cli(), ["--instance", str(instance), *args], obj=CliContext(instance=None)
    )


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def instance(tmp_path: Path, empty_db_url: str) -> Path:
    """An initialised instance on each backend."""
    path = tmp_path / "instance"
    result = invoke(path, "init", "--database-url", empty_db_url)
    assert result.exit_code == 0, result.output
    return path


def test_init_creates_config_keys_and_schema(tmp_path: Path) -> None:
    path = tmp_path / "instance"

    result = invoke(path, "init")

    assert result.exit_code == 0, result.output
    assert (path / "pamcore.toml").is_file()
    assert mode(path / "master.key") == 0o600
    assert mode(path / "web-secret.key") == 0o600
    assert mode(path) == 0o700
    assert f"migrated to {head_revision()}" in result.output
    assert "pamcore run" in result.output


def test_second_init_keeps_everything(instance: Path) -> None:
    key = (instance / "master.key").read_text()
    secret = (instance / "web-secret.key").read_text()

    result = invoke(instance, "--json", "init")

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "never overwritten" in report["master_key"]
    assert report["config"].startswith("exists")
    assert report["database"] == f"already at {head_revision()}"
    assert (instance / "master.key").read_text() == key
    assert (instance / "web-secret.key").read_text() == secret


def test_init_in_an_existing_folder_leaves_everything_in_it_private(tmp_path: Path) -> None:
    """What init creates (config, SQLite database) and what it finds (an operator's
    file, a subfolder) ends 0600 / 0700, whatever the umask made of them; init says so."""
    path = tmp_path / "instance"
    (path / "extra").mkdir(parents=True)
    path.chmod(0o755)
    (path / "extra").chmod(0o755)
    (path / "notes.txt").write_text("the operator's")
    (path / "notes.txt").chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        result = invoke(path, "--json", "init")
    finally:
        os.umask(old_umask)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["permissions"]
    for name in ("the instance folder 755 -> 700", "extra 755 -> 700", "notes.txt 644 -> 600"):
        assert name in report
    assert "pamcore.toml 644 -> 600" in report
    assert "pamcore.db 644 -> 600" in report
    assert mode(path) == 0o700
    for found in path.rglob("*"):
        assert mode(found) == (0o700 if found.is_dir() else 0o600), found


def test_init_tightens_a_file_loosened_since(instance: Path) -> None:
    (instance / "pamcore.toml").chmod(0o644)
    (instance / "master.key").chmod(0o640)

    again = invoke(instance, "init")
    third = invoke(instance, "init")

    assert again.exit_code == 0, again.output
    assert "permissions: tightened " in again.output
    assert "pamcore.toml 644 -> 600" in again.output and "master.key 640 -> 600" in again.output
    assert mode(instance / "pamcore.toml") == mode(instance / "master.key") == 0o600
    assert "permissions: private (folders 0700, files 0600)" in third.output


def test_init_refuses_to_silently_change_the_database(instance: Path, tmp_path: Path) -> None:
    result = invoke(instance, "init", "--database-url", f"sqlite:///{tmp_path / 'other.db'}")

    assert result.exit_code == 10
    assert "edit it instead" in result.output


PREPARING_PLUGIN = """
from pamcore import hookimpl
from pamcore.revisions import require_current


@hookimpl
def pamcore_init_instance(core):
    require_current(core.engine)  # called on a migrated database
    path = core.config.instance_path / "prepared.txt"
    if not path.exists():
        path.write_text("made once")
    return [f"prepared {path.name}"]
"""

BROKEN_PLUGIN = """
from pamcore import hookimpl


@hookimpl
def pamcore_init_instance(core):
    raise RuntimeError("the vendor's HSM is unreachable")
"""


def plugins_folder(tmp_path: Path, **plugins: str) -> Path:
    folder = tmp_path / "plugins.d"
    folder.mkdir()
    for name, source in plugins.items():
        (folder / f"{name}.py").write_text(source)
    return folder


def test_init_lets_each_plugin_prepare_its_files_after_the_migration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = plugins_folder(tmp_path, preparing=PREPARING_PLUGIN)
    monkeypatch.setenv("PAMCORE_PLUGINS_DIR", str(folder))
    path = tmp_path / "instance"

    first = invoke(path, "init")
    (path / "prepared.txt").write_text("kept")
    second = invoke(path, "--json", "init")

    assert first.exit_code == 0, first.output
    assert "preparing: prepared prepared.txt\n" in first.output
    assert first.output.index(f"migrated to {head_revision()}") < first.output.index("preparing:")
    assert first.output.rstrip().endswith("start it with 'pamcore run'")
    assert second.exit_code == 0, second.output
    report = json.loads(second.stdout)
    assert report["plugins"]["preparing"] == {"lines": ["prepared prepared.txt"], "error": None}
    assert (path / "prepared.txt").read_text() == "kept"


def test_a_plugin_that_fails_at_init_is_named_and_the_instance_is_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = plugins_folder(tmp_path, broken=BROKEN_PLUGIN, preparing=PREPARING_PLUGIN)
    monkeypatch.setenv("PAMCORE_PLUGINS_DIR", str(folder))
    monkeypatch.setenv("PAMCORE_STRICT_PLUGINS", "1")  # reported the same in strict mode
    path = tmp_path / "instance"

    result = invoke(path, "init")

    assert result.exit_code == 10
    assert "broken: FAILED: RuntimeError: the vendor's HSM is unreachable" in result.output
    assert "preparing: prepared prepared.txt" in result.output  # the others still ran
    assert "plugin broken could not prepare the instance" in result.output
    assert "run 'pamcore init' again" in result.output
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit with a code, not a crash
    assert mode(path / "master.key") == 0o600
    open_core(path).dispose()  # the core's part is complete: config, key, schema
    key = (path / "master.key").read_text()

    (folder / "broken.py").unlink()
    again = invoke(path, "init")

    assert again.exit_code == 0, again.output
    assert "pamcore instance ready" in again.output
    assert (path / "master.key").read_text() == key


def test_db_current_and_check_on_an_initialised_instance(instance: Path) -> None:
    current = invoke(instance, "--json", "db", "current")
    check = invoke(instance, "db", "check")

    assert current.exit_code == 0, current.output
    record = json.loads(current.stdout)
    assert record["current"] == record["head"] == head_revision()
    assert check.exit_code == 0, check.output
    assert "up to date" in check.output


def test_db_current_never_shows_the_password(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The test server trusts loopback, so any password connects: the point is the output.
    url = make_url(require_pg_admin_url()).set(password="Hunter2-not-shown")
    monkeypatch.setenv("PAMCORE_DATABASE_URL", url.render_as_string(hide_password=False))

    result = invoke(tmp_path / "bare", "db", "current")

    assert result.exit_code == 0, result.output
    assert "Hunter2" not in result.output
    assert "***" in result.output


def test_db_check_fails_and_upgrade_fixes_an_unmigrated_database(tmp_path: Path) -> None:
    path = tmp_path / "bare"
    path.mkdir()

    check = invoke(path, "db", "check")
    upgrade = invoke(path, "db", "upgrade")
    again = invoke(path, "db", "check")

    assert check.exit_code == 10
    assert "run 'pamcore db upgrade'" in check.output
    assert "Traceback" not in check.output
    assert upgrade.exit_code == 0, upgrade.output
    assert f"to {head_revision()}" in upgrade.output
    assert again.exit_code == 0, again.output


def test_an_instance_without_its_audit_key_refuses_to_start(tmp_path: Path) -> None:
    """After an upgrade with only 'db upgrade', every audited action would fail: commands
    refuse at once and say to run 'pamcore init'."""
    path = tmp_path / "instance"
    assert invoke(path, "init").exit_code == 0
    backup = (path / "audit.key").read_bytes()
    (path / "audit.key").unlink()

    result = invoke(path, "worker", "--once")

    assert result.exit_code == 10, result.output
    assert "no audit key at" in result.output and "run 'pamcore init'" in result.output
    assert "Traceback" not in result.output
    (path / "audit.key").write_bytes(backup)
    (path / "audit.key").chmod(0o600)
    assert invoke(path, "worker", "--once").exit_code == 0


def test_missing_instance_is_one_clear_line(tmp_path: Path) -> None:
    result = invoke(tmp_path / "nowhere", "worker", "--once")

    assert result.exit_code != 0
    assert "run 'pamcore init'" in result.output
    assert "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "nowhere").exists()  # a mistyped path creates nothing


def _schedule_session(core: Pamcore) -> int:
    """alice asks for a session now under a profile without approval: it is scheduled."""
    with core.unit() as db:
        alice = b.make_user(db, "alice")
        web01 = b.make_resource(db, "web01")
        activity = b.make_activity(db, "Linux Admin", login_mode=LoginMode.EPHEMERAL)
        profile = b.make_profile(db, "Standard", max_duration_minutes=60)
        b.make_policy(db, "alice web", profile, [activity], [web01], users=[alice])
        session = create_session(
            core, db, alice, SessionRequest(activity="Linux Admin", resources=("web01",))
        )
        assert session.status == Status.SCHEDULED
        return session.id


def test_worker_once_makes_a_due_session_available(instance: Path) -> None:
    core = open_core(instance)
    try:
        session_id = _schedule_session(core)

        result = invoke(instance, "--json", "worker", "--once")

        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["activated"] == [session_id]
        assert report["message"] == f"activated {session_id}"
        with core.reader() as db:
            assert db.get(ActivitySession, session_id).status == Status.AVAILABLE
    finally:
        core.dispose()


def test_worker_once_with_nothing_due(instance: Path) -> None:
    result = invoke(instance, "worker", "--once")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "nothing due"


def test_a_failing_tick_is_logged_and_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = load_config(tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none")
    core = Pamcore(config)
    try:
        assert run_tick(core) is None
    finally:
        core.dispose()
    assert "scheduler tick failed: database error OperationalError" in caplog.text


def test_run_starts_and_stops_as_a_real_process(tmp_path: Path) -> None:
    path = tmp_path / "instance"
    assert invoke(path, "init").exit_code == 0

    done = subprocess.run(
        [PAMCORE, "--instance", str(path), "run", "--stop-after", "0.5"],
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert "started scheduler" in done.stdout
    assert "pamcore stopped" in done.stderr
    assert "Traceback" not in done.stderr


def test_run_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    path = tmp_path / "instance"
    assert invoke(path, "init").exit_code == 0
    proc = subprocess.Popen(
        [PAMCORE, "--instance", str(path), "run"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert "started scheduler" in proc.stdout.readline()
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "pamcore stopped" in stderr


class _EchoListener:
    """A listener on a real socket, as a protocol plugin's would be."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self._port = host, port
        self.server: asyncio.Server | None = None

    async def start(self) -> None:
        self.server = await asyncio.start_server(lambda r, w: w.close(), self.host, self._port)

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]


class _Protocols:
    """Two protocols: one listens, one cannot start (its port is taken)."""

    def __init__(self, taken_port: int) -> None:
        self.taken_port = taken_port

    @pamcore.hookimpl
    def pamcore_register_protocols(self, register) -> None:  # type: ignore[no-untyped-def]
        register(ProtocolHandler("echo", 0, listener_factory=lambda c, h, p: _EchoListener(h, p)))
        register(ProtocolHandler("busy", self.taken_port, listener_factory=self._busy))

    def _busy(self, core: Pamcore, host: str, port: int) -> _EchoListener:
        return _EchoListener(host, port)


def test_runtime_starts_listeners_and_survives_one_that_fails(core: Pamcore) -> None:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    name = core.plugins.register(_Protocols(blocker.getsockname()[1]), name="test-protocols")
    try:
        services = [SchedulerService(core, 0.05), *proxy_services(core)]
        seen: dict[str, object] = {}

        async def scenario() -> list:  # type: ignore[type-arg]
            runtime = Runtime(services)

            def started(results: list) -> None:  # type: ignore[type-arg]
                echo = next(r for r in results if r.name == "echo listener")
                host, port = echo.detail.rsplit(":", 1)
                seen["connect"] = asyncio.ensure_future(asyncio.open_connection(host, int(port)))
                asyncio.get_running_loop().call_later(0.3, runtime.request_stop)

            return await runtime.serve(duration=10, on_started=started)

        results = asyncio.run(scenario())
    finally:
        core.plugins.unregister(name)
        blocker.close()

    by_name = {r.name: r for r in results}
    assert by_name["scheduler"].ok
    assert by_name["echo listener"].ok
    assert not by_name["busy listener"].ok
    assert "address already in use" in by_name["busy listener"].detail.lower()
    assert seen["connect"].done() and seen["connect"].exception() is None  # type: ignore[attr-defined]


def test_init_creates_the_audit_key_once(instance: Path) -> None:
    key = instance / "audit.key"
    text = key.read_text()
    assert mode(key) == 0o600 and "pamcore audit keyring" in text and "@legacy_until" not in text

    result = invoke(instance, "--json", "init")

    assert result.exit_code == 0, result.output
    assert "never overwritten" in json.loads(result.stdout)["audit_key"]
    assert key.read_text() == text
