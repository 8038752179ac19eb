"""Declarative base and the column types every model shares."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, event
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, MappedColumn, Session, mapped_column

from pamcore.clock import utcnow

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[dt.datetime]):
    """Stores naive UTC, returns aware UTC: SQLite keeps no zone, and we never want local time."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column; use Pamcore.now()")
        return value.astimezone(dt.UTC).replace(tzinfo=None)

    def process_result_value(self, value: Any, dialect: Dialect) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map = {dt.datetime: UTCDateTime()}

    def __repr__(self) -> str:
        """Names the row without its columns, so no secret can leak through a repr."""
        ident = getattr(self, "name", None) or getattr(self, "username", None)
        return f"<{type(self).__name__} id={getattr(self, 'id', None)} {ident or ''}>".replace(
            " >", ">"
        )


def stamped_column(**kwargs: Any) -> MappedColumn[Any]:
    """A creation time (``created_at``, ``decided_at``, ...) left unset by the code that
    adds the row: filled at flush from the clock of the unit that writes it, so it agrees
    with every other time the core states (see :func:`_stamp_new_rows`)."""
    return mapped_column(info={"stamp": True}, **kwargs)


@event.listens_for(Session, "before_flush")
def _stamp_new_rows(db: Session, flush_context: Any, instances: Any) -> None:
    """Fill unset stamped columns of new rows from ``db.info["clock"]``, which
    :meth:`pamcore.core.Pamcore.unit` and ``reader`` set to the core's clock."""
    clock = db.info.get("clock")
    for obj in db.new:
        for column in obj.__mapper__.columns:
            if column.info.get("stamp") and getattr(obj, column.key, None) is None:
                # A Session made outside a Pamcore (a migration) has no core clock: wall clock.
                setattr(obj, column.key, clock() if clock else utcnow())
