"""Alembic migrations of pamcore's schema; run them with ``pamcore db upgrade`` (see
:mod:`pamcore.schema`), not with an ``alembic.ini``."""
