"""What every command gets through ``ctx.obj``: the instance path, output mode, the core."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import update_wrapper
from pathlib import Path
from typing import Any, TypeVar

import click

from pamcore.core import Pamcore, open_core

F = TypeVar("F", bound=Callable[..., Any])


@dataclass
class CliContext:
    instance: Path | None
    as_json: bool = False
    #: ``--log-format`` when given (``pamcore.toml``'s ``log_format`` applies otherwise).
    log_format: str | None = None
    _core: Pamcore | None = field(default=None, repr=False)

    @property
    def core(self) -> Pamcore:
        """Opened on first use, so ``pamcore init`` and ``--help`` need no database."""
        if self._core is None:
            self._core = open_core(self.instance)
        return self._core

    def core_for_init(self) -> Pamcore:
        """The core for ``pamcore init``, which opens the instance before its audit key
        exists (every other command refuses to start without it)."""
        if self._core is None:
            self._core = open_core(self.instance, audit_key_required=False)
        return self._core

    def set_core(self, core: Pamcore) -> None:
        self._core = core

    def close(self) -> None:
        if self._core is not None:
            self._core.dispose()


pass_cli = click.make_pass_decorator(CliContext)

json_option = click.option(
    "--json", "as_json", is_flag=True, default=None, help="Print JSON for scripts."
)


def with_json(f: F) -> F:
    """Adds ``--json`` to a command; ``pamcore --json CMD`` works as well."""

    @json_option
    @click.pass_context
    def wrapper(ctx: click.Context, *args: Any, as_json: bool | None, **kwargs: Any) -> Any:
        obj: CliContext = ctx.ensure_object(CliContext)
        if as_json:
            obj.as_json = True
        return ctx.invoke(f, *args, **kwargs)

    return update_wrapper(wrapper, f)  # type: ignore[return-value]


#: For ``run``, ``proxy`` and ``web``: stop after a while (smoke tests); default until a signal.
metrics_port_option = click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    metavar="PORT",
    help="Serve /metrics, /healthz and /readyz on this port (default: metrics_port in "
    "pamcore.toml); processes of one instance on one machine need a port each.",
)
stop_after_option = click.option(
    "--stop-after",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Stop after this many seconds (for smoke tests); default: until Ctrl+C or SIGTERM.",
)
