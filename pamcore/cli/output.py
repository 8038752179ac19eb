"""Rendering for the CLI: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import click

from pamcore.presenters import plain as _plain


def _cell(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(_cell(v) for v in value) or "-"
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items()) or "-"
    return str(value)


def emit_rows(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    as_json: bool,
    empty: str = "nothing to show",
) -> None:
    """Print rows as an aligned table or a JSON list (all keys, not only ``columns``)."""
    if as_json:
        click.echo(json.dumps([_plain(r) for r in rows], indent=2))
        return
    if not rows:
        click.echo(empty)
        return
    cells = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    click.echo("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())


def emit_record(record: Mapping[str, Any], as_json: bool) -> None:
    """Print one object as ``key: value`` lines or a JSON object."""
    if as_json:
        click.echo(json.dumps(_plain(record), indent=2))
        return
    width = max((len(k) for k in record), default=0)
    for key, value in record.items():
        click.echo(f"{key.replace('_', ' ').ljust(width)}  {_cell(value)}")


def emit_message(message: str, as_json: bool, **data: Any) -> None:
    if as_json:
        click.echo(json.dumps(_plain({"message": message, **data}), indent=2))
    else:
        click.echo(message)


def split_names(values: Iterable[str]) -> list[str]:
    """``--resource a,b --resource c`` -> ["a", "b", "c"]."""
    return [n.strip() for v in values for n in v.split(",") if n.strip()]
