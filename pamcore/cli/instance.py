"""``pamcore init``, ``pamcore run`` and ``pamcore worker``: create an instance, run it."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import stat
from pathlib import Path

import click

from pamcore.cli.context import (
    CliContext,
    metrics_port_option,
    pass_cli,
    stop_after_option,
    with_json,
)
from pamcore.cli.output import emit_message, emit_record
from pamcore.config import CONFIG_FILE, Config, default_config_text, load_config
from pamcore.core import Pamcore
from pamcore.errors import ConfigurationError, PamError
from pamcore.health import ServiceStates
from pamcore.logs import use_json_logs
from pamcore.runtime import (
    SchedulerService,
    Service,
    Started,
    describe_tick,
    proxy_services,
    run_services,
    run_tick,
)
from pamcore.schema import upgrade_database
from pamcore.services import audit_keys
from pamcore.services.scheduler import TickReport
from pamcore.vault import MASTER_KEY_ENV, MasterKey, write_key_file
from pamcore.web.server import WebService, monitoring_services

log = logging.getLogger(__name__)


def _write_private(path: Path, text: str) -> None:
    """Create a 0600 file; never replaces one (O_EXCL), so a key is never overwritten."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


def service_logging(cli: CliContext) -> None:
    """Long-running commands report what they do at INFO unless the operator chose a level,
    in the instance's ``log_format`` unless ``--log-format`` chose one."""
    if not os.environ.get("PAMCORE_LOG_LEVEL"):
        logging.getLogger("pamcore").setLevel(logging.INFO)
    if cli.log_format is None and cli.core.config.log_format == "json":
        use_json_logs()


@click.command()
@click.option(
    "--database-url",
    metavar="URL",
    help="SQLAlchemy URL written to pamcore.toml (default: SQLite in the instance folder).",
)
@with_json
@pass_cli
def init(cli: CliContext, database_url: str | None) -> None:
    """Create the instance folder (config, master key, web secret), migrate the database,
    create the audit key, then let each plugin prepare its own files (proxy host key, RDP
    certificate).

    Safe to run again: what exists is kept (a master key is never replaced) and the
    database is brought to the newest schema.
    """
    config = load_config(cli.instance)
    instance = config.instance_path
    steps: dict[str, str] = {}

    if not instance.exists():
        instance.mkdir(mode=0o700, parents=True)
        steps["instance"] = f"created {instance}"
    else:
        steps["instance"] = f"exists {instance}"

    config_file = instance / CONFIG_FILE
    if config_file.exists():
        steps["config"] = f"exists {config_file} (kept)"
        if database_url and load_config(instance).database_url != database_url:
            raise ConfigurationError(
                f"{config_file} already exists with another database_url; edit it instead "
                f"of passing --database-url"
            )
    else:
        config_file.write_text(default_config_text(database_url))
        steps["config"] = f"created {config_file}"
    config = load_config(instance)

    key = config.master_key_path
    if os.environ.get(MASTER_KEY_ENV):
        steps["master_key"] = f"from {MASTER_KEY_ENV} (no file written)"
    elif key.exists():
        steps["master_key"] = f"exists {key} (kept, never overwritten)"
    else:
        write_key_file(key, MasterKey.generate())
        steps["master_key"] = f"created {key}"

    steps["web_secret"] = _ensure_web_secret(config)

    before, after = upgrade_database(config.database_url)
    steps["database"] = (
        f"migrated to {after}" + (f" (was {before})" if before else "")
        if before != after
        else f"already at {after}"
    )
    steps["audit_key"] = _ensure_audit_key(cli.core_for_init())
    # Before the plugins (the vault refuses a key others can read) and after (their files).
    tightened = _make_private(instance)
    # Plugins last, on a complete instance: a plugin that fails leaves the core's part done.
    prepared = cli.core.hooks.init_instance(cli.core)
    failed = [p.plugin for p in prepared if p.error]
    tightened += _make_private(instance)
    steps["permissions"] = (
        "tightened " + ", ".join(tightened) if tightened else "private (folders 0700, files 0600)"
    )
    if cli.as_json:
        plugins = {p.plugin: {"lines": p.lines, "error": p.error} for p in prepared}
        emit_record({"instance": str(instance), **steps, "plugins": plugins}, as_json=True)
    else:
        for name, what in steps.items():
            click.echo(f"{name.replace('_', ' ')}: {what}")
        for p in prepared:
            for line in [f"FAILED: {p.error}"] if p.error else p.lines:
                click.echo(f"{p.plugin}: {line}")
    if failed:
        raise ConfigurationError(
            f"plugin {', '.join(failed)} could not prepare the instance (see above); "
            f"fix it and run 'pamcore init' again (what exists is kept)"
        )
    if not cli.as_json:
        click.echo(f"pamcore instance ready in {instance}; start it with 'pamcore run'")


def _make_private(instance: Path) -> list[str]:
    """Tighten the instance folder, its subfolders (0700) and every file in them (0600),
    whoever created them (the config, SQLite, a plugin, an operator's copy): the folder
    holds the database and the keys, so nobody else on the machine may read any of it.
    Returns what it changed, as ``name old -> new``."""
    tightened: list[str] = []
    inside = (Path(top, name) for top, dirs, files in os.walk(instance) for name in dirs + files)
    for path in [instance, *inside]:
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            continue  # a link's target is not ours to change
        wanted = 0o700 if stat.S_ISDIR(info.st_mode) else 0o600
        if stat.S_IMODE(info.st_mode) == wanted:
            continue
        try:
            path.chmod(wanted)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot make {path} private ({exc.strerror}); run 'chmod {wanted:o} "
                f"{path}' as its owner, then 'pamcore init' again"
            ) from exc
        name = "the instance folder" if path == instance else path.relative_to(instance)
        tightened.append(f"{name} {stat.S_IMODE(info.st_mode):o} -> {wanted:o}")
    return tightened


def _ensure_audit_key(core: Pamcore) -> str:
    path = core.config.audit_key_path
    made = audit_keys.ensure_key(core)
    if not made.created:
        return f"exists {path} (kept, never overwritten)"
    if made.legacy_until:
        return f"created {path}; events 1-{made.legacy_until} predate it (plain SHA-256)"
    return f"created {path}"


def _ensure_web_secret(config: Config) -> str:
    path = config.secret_key_path
    if path is None:
        return "not configured"
    if path.exists():
        return f"exists {path} (kept)"
    _write_private(path, secrets.token_urlsafe(48) + "\n")
    return f"created {path}"


@click.command()
@click.option("--once", is_flag=True, help="Run one scheduler tick, print what it did, exit.")
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    metavar="SECONDS",
    help="Seconds between ticks (default: scheduler_interval in pamcore.toml).",
)
@metrics_port_option
@with_json
@pass_cli
def worker(cli: CliContext, once: bool, interval: float | None, metrics_port: int | None) -> None:
    """Run the scheduler alone: start due sessions, expire ended ones, escalate approvals.

    Several workers may share one PostgreSQL database; each session is claimed by one.
    """
    core = cli.core
    if once:
        report = run_tick(core)
        if report is None:
            raise PamError("the scheduler tick failed; see the log above")
        emit_message(describe_tick(report), cli.as_json, **dataclasses.asdict(report))
        return
    service_logging(cli)
    seconds = interval or core.config.scheduler_interval

    def print_tick(report: TickReport) -> None:
        emit_message(describe_tick(report), cli.as_json, **dataclasses.asdict(report))

    def show(results: list[Started]) -> None:
        for r in results:
            if r.name != SchedulerService.name:
                click.echo(f"{'started' if r.ok else 'FAILED '} {r.name}: {r.detail}", err=True)
        click.echo(f"pamcore worker: scheduler every {seconds:g}s; Ctrl+C to stop", err=True)

    states = ServiceStates()
    services: list[Service] = [
        SchedulerService(core, seconds, on_tick=print_tick),
        *monitoring_services(core, states, metrics_port),
    ]
    run_services(services, on_started=show, states=states)
    click.echo("pamcore worker stopped", err=True)


@click.command()
@stop_after_option
@with_json
@pass_cli
def run(cli: CliContext, stop_after: float | None) -> None:
    """Run everything installed in one process: scheduler, web dashboard, proxy listeners."""
    core = cli.core
    service_logging(cli)
    states = ServiceStates()
    services: list[Service] = [
        SchedulerService(core, core.config.scheduler_interval),
        WebService(core, states=states),
        *proxy_services(core),
    ]

    if len(services) == 2:
        click.echo("no proxy listeners: no installed protocol plugin provides one", err=True)

    def show(results: list[Started]) -> None:
        if cli.as_json:
            emit_record({"started": [dataclasses.asdict(r) for r in results]}, as_json=True)
            return
        for r in results:
            click.echo(f"{'started' if r.ok else 'FAILED '} {r.name}: {r.detail}")
        click.echo("pamcore is running; Ctrl+C to stop", err=True)

    results = run_services(services, duration=stop_after, on_started=show, states=states)
    click.echo("pamcore stopped", err=True)
    if not any(r.ok for r in results):
        raise ConfigurationError("no component started; see the messages above")
