"""Shared fixtures: pamcore.testing's core (SQLite + PostgreSQL) and a small world of data."""

from __future__ import annotations

import pytest

from pamcore.core import Pamcore
from tests.world import World, make_world


@pytest.fixture
def world(core: Pamcore) -> World:
    return make_world(core)
