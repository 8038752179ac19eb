"""``pamcore proxy``: run only the protocol plugins' proxy listeners (a proxy node at scale;
the scheduler runs in ``pamcore worker``, the dashboard in ``pamcore web``)."""

from __future__ import annotations

import click

from pamcore.cli.context import CliContext, metrics_port_option, pass_cli, stop_after_option
from pamcore.cli.instance import service_logging
from pamcore.errors import ConfigurationError
from pamcore.health import ServiceStates
from pamcore.runtime import Service, Started, proxy_services, run_services
from pamcore.web.server import monitoring_services


@click.command()
@stop_after_option
@metrics_port_option
@pass_cli
def proxy(cli: CliContext, stop_after: float | None, metrics_port: int | None) -> None:
    """Run the proxy listeners of every installed protocol plugin."""
    listeners = proxy_services(cli.core)
    if not listeners:
        raise ConfigurationError("no proxy listeners: no installed protocol plugin provides one")
    service_logging(cli)
    states = ServiceStates()
    services: list[Service] = [*listeners, *monitoring_services(cli.core, states, metrics_port)]

    def show(results: list[Started]) -> None:
        for r in results:
            click.echo(f"{'started' if r.ok else 'FAILED '} {r.name}: {r.detail}")
        click.echo("pamcore proxy is running; Ctrl+C to stop", err=True)

    results = run_services(services, duration=stop_after, on_started=show, states=states)
    click.echo("pamcore proxy stopped", err=True)
    if not any(r.ok for r in results[: len(listeners)]):
        raise ConfigurationError("no listener started; see the messages above")
