"""``pamcore web``: the dashboard alone (scale-out: several web nodes beside workers and
proxies on one PostgreSQL database)."""

from __future__ import annotations

import click

from pamcore.cli.context import CliContext, pass_cli, stop_after_option
from pamcore.cli.instance import service_logging
from pamcore.errors import ConfigurationError
from pamcore.health import ServiceStates
from pamcore.runtime import Started, run_services
from pamcore.web.server import WebService


@click.command()
@click.option("--bind", metavar="HOST", help="Listen address (default: web_bind in pamcore.toml).")
@click.option(
    "--port", type=click.IntRange(0, 65535), help="Port (default: web_port in pamcore.toml)."
)
@stop_after_option
@pass_cli
def web(cli: CliContext, bind: str | None, port: int | None, stop_after: float | None) -> None:
    """Serve the web dashboard (cheroot) until Ctrl+C or SIGTERM."""
    service_logging(cli)

    def show(results: list[Started]) -> None:
        for r in results:
            if r.ok:
                click.echo(f"pamcore dashboard on {r.detail}; Ctrl+C to stop", err=True)

    states = ServiceStates()
    results = run_services(
        [WebService(cli.core, bind, port, states)], stop_after, on_started=show, states=states
    )
    if not any(r.ok for r in results):
        raise ConfigurationError(f"the dashboard did not start: {results[0].detail}")
