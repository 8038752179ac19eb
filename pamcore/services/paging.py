"""Cursor paging for lists that can outgrow one answer (the REST API's sessions, activities,
resources): newest first by id, each page continuing below the last id the previous one
gave. Keyset paging, not offsets, so rows added while a client pages never shift a page:
every row that existed when paging began comes exactly once.

The cursor is opaque to clients (base64url of the listing's name and the last id): a
cursor from one listing (or view) is refused by another rather than silently misread.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from pamcore.errors import ValidationError
from pamcore.services.common import MAX_ID

DEFAULT_LIMIT = 200
#: The most rows one page holds: bounds the memory and time of one answer.
MAX_LIMIT = 1000

T = TypeVar("T")


@dataclass(frozen=True)
class PageRequest:
    """Which page: at most ``limit`` rows of ``listing`` with ids below ``before``."""

    listing: str
    limit: int = DEFAULT_LIMIT
    before: int | None = None


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of rows and the cursor of the next (``None`` on the last page)."""

    items: Sequence[T]
    next_cursor: str | None


#: How a wrong ``limit`` or ``cursor`` is explained, here and by the API's parameter checks.
LIMIT_RULE = f"a whole number 1-{MAX_LIMIT}"
WRONG_CURSOR = "not a cursor this list gave (start again without one, then follow 'next')"


def page_request(listing: str, limit: str | None, cursor: str | None) -> PageRequest:
    """Parse a client's ``limit`` and ``cursor`` (both as typed, ``None`` when absent);
    raises ValidationError naming the one that is wrong."""
    if limit is None:
        rows = DEFAULT_LIMIT
    elif limit.isascii() and limit.isdigit() and 1 <= int(limit) <= MAX_LIMIT:
        rows = int(limit)
    else:
        raise ValidationError("limit", f"{LIMIT_RULE}, not {limit[:20]!r}")
    return PageRequest(listing, rows, _before(listing, cursor) if cursor is not None else None)


def fetch_page(
    db: Session, query: Select[Any], id_column: InstrumentedAttribute[int], wanted: PageRequest
) -> Page[Any]:
    """Run ``query`` (its filters, no order or limit) for one page, newest id first."""
    if wanted.before is not None:
        query = query.where(id_column < wanted.before)
    rows = list(db.scalars(query.order_by(id_column.desc()).limit(wanted.limit + 1)))
    if len(rows) <= wanted.limit:
        return Page(rows, None)
    rows = rows[: wanted.limit]
    return Page(rows, _cursor(wanted.listing, getattr(rows[-1], id_column.key)))


def _cursor(listing: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{listing}:{last_id}".encode()).decode().rstrip("=")


def _before(listing: str, cursor: str) -> int:
    """The last id a cursor of ``listing`` carries."""
    wrong = ValidationError("cursor", WRONG_CURSOR)
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise wrong from None
    name, _, last = text.rpartition(":")
    if name != listing or not (last.isascii() and last.isdigit()) or not 0 < int(last) <= MAX_ID:
        raise wrong
    return int(last)
