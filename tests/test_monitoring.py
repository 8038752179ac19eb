"""``/metrics``, ``/healthz``, ``/readyz`` and JSON logs (issue 13): scraped from real
``pamcore run``, ``pamcore worker`` and ``pamcore proxy`` processes on their own instance
and free ports, on SQLite and PostgreSQL; the database taken away and the schema set back
under a running process."""

from __future__ import annotations

import datetime as dt
import http.cookiejar
import json
import logging
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pamcore import hookimpl
from pamcore.cli.context import CliContext
from pamcore.cli.main import build_cli
from pamcore.config import load_config
from pamcore.core import Pamcore, open_core
from pamcore.errors import ActionFailed, ConfigurationError
from pamcore.lifecycle import Status
from pamcore.logs import JsonFormatter
from pamcore.metrics import PROCESS
from pamcore.model import LoginMode, Role
from pamcore.plugins import build_plugin_host
from pamcore.registry import ActionContext, ActionType
from pamcore.services import scheduler
from pamcore.services.sessions import SessionRequest, create_session
from pamcore.testing import builders as b
from pamcore.testing import drop_pg_database, pg_admin_url
from pamcore.testing.sshd import free_port
from pamcore.web.app import create_app
from tests.world import World, fresh

PAMCORE = str(Path(sys.executable).parent / "pamcore")
PASSWORD = "Monitor-alice-pw-1"


@dataclass
class Process:
    """A pamcore command running as its own process, its output in a file."""

    proc: subprocess.Popen[bytes]
    log: Path
    base: str

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def tail(self) -> str:
        return self.output()[-3000:]

    def get(self, path: str) -> tuple[int, str, str]:
        """Status, content type and body of a GET (an error status is an answer too)."""
        try:
            with urllib.request.urlopen(f"{self.base}{path}", timeout=10) as response:  # noqa: S310
                return response.status, response.headers["Content-Type"], response.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers["Content-Type"], exc.read().decode()

    def metrics(self) -> str:
        status, content_type, body = self.get("/metrics")
        assert status == 200 and content_type.startswith("text/plain"), (status, body)
        return body

    def wait_for(self, path: str, status: int, timeout: float = 30) -> str:
        """Until ``path`` answers ``status``; its body."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                got, _, body = self.get(path)
                if got == status:
                    return body
            except OSError:
                got, body = 0, "not listening yet"
            assert self.proc.poll() is None, self.tail()
            assert time.monotonic() < deadline, f"{path}: {got} {body}\n{self.tail()}"
            time.sleep(0.1)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    """Every process a test starts, stopped (SIGTERM) at its end."""
    started: list[Process] = []
    yield started
    for process in started:
        process.proc.terminate()
        try:
            process.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.proc.kill()
            process.proc.wait()


def start(processes: list[Process], instance: Path, port: int, *args: str) -> Process:
    log = instance.parent / f"{args[-1]}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [PAMCORE, "--instance", str(instance), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    process = Process(proc, log, f"http://127.0.0.1:{port}")
    processes.append(process)
    return process


@pytest.fixture
def instance(tmp_path: Path, empty_db_url: str) -> Path:
    """An initialised instance on each backend."""
    path = tmp_path / "instance"
    result = CliRunner().invoke(
        build_cli(),
        ["--instance", str(path), "init", "--database-url", empty_db_url],
        obj=CliContext(instance=None),
    )
    assert result.exit_code == 0, result.output
    return path


def set_settings(instance: Path, **settings: object) -> None:
    """Set ``[pamcore]`` settings in the instance's pamcore.toml (replacing a line
    ``pamcore init`` wrote, or adding one)."""
    config = instance / "pamcore.toml"
    text = config.read_text()
    for key, value in settings.items():
        line = f"{key} = {json.dumps(value)}"
        text, found = re.subn(rf"(?m)^{key} = .*$", line, text)
        if not found:
            text = text.replace("[pamcore]\n", f"[pamcore]\n{line}\n", 1)
    config.write_text(text)


def on_free_ports(instance: Path, **settings: object) -> dict[str, int]:
    """Free ports for the dashboard (``web``) and every installed protocol's proxy, never
    the default ones (other tests run beside this one), a short scheduler interval and
    ``settings``; the ports by name."""
    ports = {"web": free_port()}
    set_settings(instance, web_port=ports["web"], scheduler_interval=0.1, **settings)
    protocols = {name: free_port() for name in sorted(build_plugin_host().hooks.protocols())}
    with (instance / "pamcore.toml").open("a") as config:  # [pamcore.proxy_ports] is last
        config.writelines(f'"{name}" = {port}\n' for name, port in protocols.items())
    return ports | protocols


def people_and_sessions(instance: Path, due: int, waiting: int) -> None:
    """alice (with a password), ``due`` sessions of hers starting now on hosts needing no
    approval, and ``waiting`` on hosts whose profile waits for carol's approval. The due
    ones are asked for with ``pamcore sessions create``, so that "now" is the clock the
    pamcore processes under test run on (the test's own may be moved)."""
    core = open_core(instance)
    try:
        with core.unit() as db:
            alice = b.make_user(db, "alice", password=PASSWORD)
            carol = b.make_user(db, "carol", role=Role.APPROVER)
            activity = b.make_activity(db, "Linux Admin", login_mode=LoginMode.EPHEMERAL)
            standard = b.make_profile(db, "Standard", max_duration_minutes=60)
            approved = b.make_profile(db, "Approved", tiers=[(1, [carol], [])])
            hosts = [b.make_resource(db, f"web{n:02}") for n in range(due + waiting)]
            b.make_policy(db, "now", standard, [activity], hosts[:due], users=[alice])
            b.make_policy(db, "approved", approved, [activity], hosts[due:], users=[alice])
            for host in hosts[due:]:
                request = SessionRequest("Linux Admin", (host.name,))
                status = create_session(core, db, alice, request).status
                assert status == Status.WAITING_FOR_APPROVAL
    finally:
        core.dispose()
    create = [PAMCORE, "--instance", str(instance), "sessions", "create", "--as", "alice"]
    for host in hosts[:due]:
        done = subprocess.run(
            [*create, "--activity", "Linux Admin", "--resource", host.name],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr


def sample(metrics: str, name: str, **labels: str) -> float | None:
    """One sample's value from a Prometheus text exposition (``None``: absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name + (f"{{{want}}}" if labels else "")) + r" (\S+)$"
    match = re.search(pattern, metrics, re.MULTILINE)
    return float(match.group(1)) if match else None


def failed_sign_in(base: str) -> int:
    """A wrong password on the dashboard's sign-in form, as a browser sends it."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
    )
    page = opener.open(f"{base}/login", timeout=10).read().decode()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, page
    form = {"csrf_token": token.group(1), "username": "alice", "password": "wrong-password"}
    try:
        opener.open(f"{base}/login", urllib.parse.urlencode(form).encode(), timeout=10)
    except urllib.error.HTTPError as exc:
        return exc.code
    return 200


def take_database_away(url: str) -> None:
    """The database goes: the SQLite file is deleted, the PostgreSQL database dropped."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database
        Path(parsed.database).unlink()
        return
    admin = pg_admin_url()
    assert admin is not None
    drop_pg_database(admin, url)


def set_schema_revision(url: str, revision: str) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    finally:
        engine.dispose()


# -- pamcore run: the dashboard's /metrics, /healthz, /readyz and JSON logs -----------------


def test_run_reports_sessions_sign_in_failures_and_readiness(
    instance: Path, processes: list[Process]
) -> None:
    web_port = on_free_ports(instance)["web"]
    people_and_sessions(instance, due=1, waiting=2)
    url = load_config(instance).database_url
    run = start(processes, instance, web_port, "--log-format", "json", "run")

    assert json.loads(run.wait_for("/healthz", 200)) == {"status": "alive"}
    assert json.loads(run.wait_for("/readyz", 200)) == {"status": "ready"}
    deadline = time.monotonic() + 30
    while sample(metrics := run.metrics(), "pamcore_sessions", status="available") != 1:
        assert time.monotonic() < deadline, metrics
        time.sleep(0.1)
    assert sample(metrics, "pamcore_sessions", status="waiting_for_approval") == 2
    assert sample(metrics, "pamcore_sessions", status="scheduled") == 0
    assert sample(metrics, "pamcore_database_up") == 1
    assert sample(metrics, "pamcore_scheduler_lag_seconds_count") == 1
    assert sample(metrics, "pamcore_sign_in_failures_total", method="password") is None

    assert failed_sign_in(run.base) == 401
    assert failed_sign_in(run.base) == 401

    metrics = run.metrics()
    assert sample(metrics, "pamcore_sign_in_failures_total", method="password") == 2
    assert "alice" not in metrics and PASSWORD not in metrics

    # The schema set back (an older pamcore's database): not ready, and why.
    set_schema_revision(url, "0001")
    reason = json.loads(run.wait_for("/readyz", 503))
    assert reason["status"] == "not ready"
    assert reason["reason"].startswith("the database schema is at 0001; this pamcore needs ")

    # The database gone: not ready, and /metrics still answers without its gauges.
    take_database_away(url)
    reason = json.loads(run.wait_for("/readyz", 503))
    assert reason["reason"] in (
        "the SQLite database file is missing",
        "the database is unreachable (OperationalError)",
    )
    metrics = run.metrics()
    assert sample(metrics, "pamcore_database_up") == 0
    assert sample(metrics, "pamcore_sessions", status="waiting_for_approval") is None
    assert sample(metrics, "pamcore_sign_in_failures_total", method="password") == 2
    assert json.loads(run.wait_for("/healthz", 200)) == {"status": "alive"}

    run.proc.terminate()
    run.proc.wait(timeout=30)
    logs = [json.loads(line) for line in run.output().splitlines() if line.startswith("{")]
    started = [e for e in logs if e["message"].startswith("web dashboard started")]
    assert len(started) == 1, run.output()
    assert started[0]["level"] == "INFO" and started[0]["logger"] == "pamcore.runtime"
    assert dt.datetime.fromisoformat(started[0]["time"]).utcoffset() == dt.timedelta(0)
    # The checks and the scrape log the database's loss in a line, never with a traceback.
    ours = ("pamcore.health", "pamcore.metrics", "pamcore.monitoring", "pamcore.web")
    assert not [e for e in logs if e["logger"].startswith(ours) and "exception" in e]


def test_dashboard_metrics_can_be_turned_off(instance: Path, processes: list[Process]) -> None:
    web_port = on_free_ports(instance, web_metrics=False, log_format="json")["web"]
    web = start(processes, instance, web_port, "web")

    assert json.loads(web.wait_for("/readyz", 200)) == {"status": "ready"}
    assert web.get("/metrics")[0] == 404
    web.proc.terminate()
    web.proc.wait(timeout=30)
    lines = [line for line in web.output().splitlines() if line.startswith("{")]
    assert any(json.loads(line)["message"].startswith("web dashboard started") for line in lines)


# -- pamcore worker and pamcore proxy: the monitoring listener on metrics_port -------------


def test_worker_serves_metrics_on_its_port(instance: Path, processes: list[Process]) -> None:
    port = free_port()
    on_free_ports(instance, metrics_port=port)
    people_and_sessions(instance, due=2, waiting=0)
    worker = start(processes, instance, port, "worker")

    assert json.loads(worker.wait_for("/readyz", 200)) == {"status": "ready"}
    deadline = time.monotonic() + 30
    while sample(metrics := worker.metrics(), "pamcore_sessions", status="available") != 2:
        assert time.monotonic() < deadline, metrics
        time.sleep(0.1)
    assert sample(metrics, "pamcore_scheduler_lag_seconds_count") == 2
    assert sample(metrics, "pamcore_scheduler_lag_seconds_bucket", le="+Inf") == 2
    assert worker.get("/nothing")[0] == 404
    assert f"started monitoring: http://127.0.0.1:{port}" in worker.output()


def test_proxy_is_not_ready_while_a_listener_is_not_bound(
    instance: Path, processes: list[Process]
) -> None:
    port = free_port()
    protocols = sorted(set(on_free_ports(instance, metrics_port=port)) - {"web"})
    if len(protocols) < 2:
        pytest.skip("needs two protocol plugins with listeners installed")
    blocked = protocols[0]
    config = instance / "pamcore.toml"
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        taken = blocker.getsockname()[1]
        config.write_text(
            re.sub(rf'(?m)^"{blocked}" = \d+$', f'"{blocked}" = {taken}', config.read_text())
        )
        proxy = start(processes, instance, port, "proxy")

        reason = json.loads(proxy.wait_for("/readyz", 503))

    assert reason["status"] == "not ready"
    assert reason["reason"].startswith(f"{blocked} listener did not start: "), reason
    assert json.loads(proxy.wait_for("/healthz", 200)) == {"status": "alive"}
    assert sample(proxy.metrics(), "pamcore_database_up") == 1


# -- in-process: what the paths reveal, and bad settings ------------------------------------


def test_monitoring_paths_need_no_sign_in_and_show_no_names(core: Pamcore) -> None:
    with core.unit() as db:
        b.make_user(db, "mallory-secret-name", password=PASSWORD)
    client = create_app(core, {"TESTING": True}).test_client()

    metrics = client.get("/metrics")
    ready = client.get("/readyz")

    assert metrics.status_code == 200
    assert sample(metrics.text, "pamcore_sessions", status="requested") == 0
    assert "mallory" not in metrics.text
    # The test database is made from the models, not the migrations: no revision.
    assert ready.status_code == 503
    assert ready.json["status"] == "not ready"
    assert ready.json["reason"].startswith("the database schema is at no revision")
    assert client.get("/healthz").json == {"status": "alive"}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("metrics_port = 70000", "metrics_port must be a port number from 0 to 65535"),
        ('metrics_port = "9464"', "metrics_port must be a port number"),
        ('log_format = "xml"', "log_format must be one of text, json"),
        ('web_metrics = "no"', "web_metrics must be true or false"),
    ],
)
def test_bad_monitoring_settings_are_refused_clearly(
    tmp_path: Path, setting: str, message: str
) -> None:
    (tmp_path / "pamcore.toml").write_text(f"[pamcore]\n{setting}\n")

    with pytest.raises(ConfigurationError, match=re.escape(message)):
        load_config(tmp_path)


def test_json_log_lines_carry_extra_fields_and_tracebacks() -> None:
    formatter = JsonFormatter()
    logger = logging.getLogger("pamcore.test")
    try:
        raise ValueError("boom")
    except ValueError:
        record = logger.makeRecord(
            "pamcore.test",
            logging.ERROR,
            __file__,
            1,
            "tick %s failed",
            (7,),
            exc_info=sys.exc_info(),
            extra={"session_id": 7},
        )

    entry = json.loads(formatter.format(record))

    assert entry["message"] == "tick 7 failed"
    assert entry["level"] == "ERROR" and entry["logger"] == "pamcore.test"
    assert entry["session_id"] == 7
    assert "ValueError: boom" in entry["exception"]
    assert "\n" not in formatter.format(record)


class _Steps:
    """Two pre-session action types: one that works, one that refuses."""

    @staticmethod
    def _fail(ctx: ActionContext) -> None:
        raise ActionFailed(f"refused by {ctx.resource.name}")

    @hookimpl
    def pamcore_register_actions(self, register):  # type: ignore[no-untyped-def]
        register(ActionType(name="metric-ok", description="works", run=lambda ctx: None))
        register(ActionType(name="metric-fail", description="refuses", run=self._fail))


def action_sample(name: str, action_type: str) -> float:
    labels = {"action_type": action_type, "phase": "pre"}
    return PROCESS.get_sample_value(name, labels) or 0.0


def test_action_runs_are_timed_and_failures_counted(core: Pamcore, world: World) -> None:
    plugin = core.plugins.register(_Steps(), "metric-steps")
    try:
        with core.unit() as db:
            activity = b.make_activity(
                db,
                "Metered",
                pre=[("metric-ok", {}), ("metric-fail", {})],
                credential=fresh(db, world.root_cred),
            )
            alice, web01 = fresh(db, world.alice), fresh(db, world.web01)
            b.make_policy(db, "metered", fresh(db, world.standard), [activity], [web01], [alice])
            request = SessionRequest("Metered", ("web01",))
            session_id = create_session(core, db, alice, request).id
        names = ("pamcore_action_duration_seconds_count", "pamcore_action_failures_total")
        before = {(n, t): action_sample(n, t) for n in names for t in ("metric-ok", "metric-fail")}

        assert session_id in scheduler.tick(core).failed

        after = {key: action_sample(*key) - value for key, value in before.items()}
    finally:
        core.plugins.unregister(plugin)
    assert after == {
        ("pamcore_action_duration_seconds_count", "metric-ok"): 1,
        ("pamcore_action_duration_seconds_count", "metric-fail"): 1,
        ("pamcore_action_failures_total", "metric-ok"): 0,
        ("pamcore_action_failures_total", "metric-fail"): 1,
    }
