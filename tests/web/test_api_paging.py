"""The REST API's lists page with cursors: following ``Link: rel="next"`` gives every row
exactly once, newest first, while rows are added; bad limits and cursors are problems."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import pytest
from flask.testing import FlaskClient

from pamcore.clock import FrozenClock
from pamcore.core import Pamcore
from pamcore.model import Activity, ConnectionProfile, Resource, Role, User
from pamcore.services.paging import DEFAULT_LIMIT, MAX_LIMIT
from pamcore.testing import builders as b
from tests.web.roles import api_token, bearer, build_app

SEEDED = 2000
NEXT = re.compile(r'^<(/api/v1/[^>]+)>; rel="next"$')


@dataclass
class Seeded:
    """alice's sessions; erin (admin) sees them all, bob (user) none."""

    client: FlaskClient
    headers: dict[str, dict[str, str]]
    session_ids: list[int]
    alice: User
    activity: Activity
    profile: ConnectionProfile
    web01: Resource


@pytest.fixture
def seeded(core: Pamcore, clock: FrozenClock) -> Seeded:
    with core.unit() as db:
        alice = b.make_user(db, "alice")
        b.make_user(db, "bob")
        b.make_user(db, "erin", Role.ADMIN)
        web01 = b.make_resource(db, "web01")
        activity = b.make_activity(db, "Linux Admin")
        profile = b.make_profile(db, "Standard")
        ids = b.make_sessions(db, SEEDED, alice, activity, profile, [web01], clock.now)
        db.expunge_all()
    headers = {name: bearer(api_token(core, name)) for name in ("alice", "bob", "erin")}
    client = build_app(core).test_client()
    return Seeded(client, headers, ids, alice, activity, profile, web01)


def _get(seeded: Seeded, who: str, path: str) -> tuple[list[Any], str | None]:
    """One page's rows and the address of the next."""
    response = seeded.client.get(path, headers=seeded.headers[who])
    assert response.status_code == 200, response.get_data(as_text=True)
    link = response.headers.get("Link")
    if link is None:
        return response.get_json(), None
    found = NEXT.match(link)
    assert found, link
    return response.get_json(), found.group(1)


def _problem(seeded: Seeded, path: str, field: str) -> str:
    response = seeded.client.get(path, headers=seeded.headers["erin"])
    assert response.status_code == 422, response.get_data(as_text=True)
    assert response.mimetype == "application/problem+json"
    problem = response.get_json()
    assert problem["type"] == "urn:pamcore:problem:validation"
    assert problem["field"] == field
    return str(problem["detail"])


def test_paging_gives_each_of_2000_sessions_once_while_sessions_are_added(
    core: Pamcore, clock: FrozenClock, seeded: Seeded
) -> None:
    seen: list[int] = []
    sizes: list[int] = []
    added: list[int] = []
    path: str | None = "/api/v1/sessions?view=all&limit=300"
    while path is not None:
        rows, path = _get(seeded, "erin", path)
        seen += [row["id"] for row in rows]
        sizes.append(len(rows))
        with core.unit() as db:  # someone requests a session between two pages
            added += b.make_sessions(
                db, 1, seeded.alice, seeded.activity, seeded.profile, [seeded.web01], clock.now
            )
    assert sorted(seen) == sorted(seeded.session_ids) and len(seen) == SEEDED
    assert seen == sorted(seen, reverse=True)  # newest first
    assert sizes == [300] * 6 + [200]
    assert not set(added) & set(seen)
    # The first page starts again at the newest, the ones added meanwhile included.
    first, _ = _get(seeded, "erin", "/api/v1/sessions?view=all&limit=300")
    assert [row["id"] for row in first[: len(added)]] == sorted(added, reverse=True)


def test_limits_default_and_cap_and_a_cursor_keeps_its_view_and_visibility(
    seeded: Seeded,
) -> None:
    rows, following = _get(seeded, "erin", "/api/v1/sessions?view=scheduled")
    assert len(rows) == DEFAULT_LIMIT and following is not None
    assert "view=scheduled" in following and "limit" not in following
    rows, following = _get(seeded, "erin", f"/api/v1/sessions?view=scheduled&limit={MAX_LIMIT}")
    assert len(rows) == MAX_LIMIT and following is not None
    rows, last = _get(seeded, "erin", following)
    assert len(rows) == SEEDED - MAX_LIMIT and last is None
    # alice pages her own; bob has none; the history holds no scheduled session.
    rows, following = _get(seeded, "alice", f"/api/v1/sessions?view=scheduled&limit={MAX_LIMIT}")
    assert len(rows) == MAX_LIMIT and following is not None
    assert _get(seeded, "bob", "/api/v1/sessions?view=scheduled") == ([], None)
    assert _get(seeded, "erin", "/api/v1/sessions?view=history") == ([], None)


def test_bad_limits_and_cursors_are_problems_naming_them(seeded: Seeded) -> None:
    for limit in ("0", str(MAX_LIMIT + 1), "-5", "ten", "²", ""):
        assert f"1-{MAX_LIMIT}" in _problem(seeded, f"/api/v1/sessions?limit={limit}", "limit")
    _, following = _get(seeded, "erin", "/api/v1/sessions?view=all&limit=5")
    assert following is not None
    cursor = following.rsplit("cursor=", 1)[1]
    assert str(seeded.session_ids[-5]) not in following  # opaque, not the id in plain sight
    for wrong in ("nonsense", "%FF%FE", "c2Vzc2lvbnMvYWxsOi0x", "", cursor[:-2]):
        detail = _problem(seeded, f"/api/v1/sessions?view=all&cursor={wrong}", "cursor")
        assert "start again without one" in detail
    # A cursor belongs to its list: another view or another list refuses it.
    _problem(seeded, f"/api/v1/sessions?view=scheduled&cursor={cursor}", "cursor")
    _problem(seeded, f"/api/v1/resources?cursor={cursor}", "cursor")
    _problem(seeded, "/api/v1/activities?limit=0", "limit")


def test_activities_and_resources_page_the_same_way(core: Pamcore, seeded: Seeded) -> None:
    with core.unit() as db:
        for n in range(2, 8):
            b.make_resource(db, f"web{n:02d}")
            b.make_activity(db, f"Activity {n}")
    for listing, key, count in (("resources", "name", 7), ("activities", "name", 7)):
        names: list[str] = []
        path: str | None = f"/api/v1/{listing}?limit=3"
        pages = 0
        while path is not None:
            rows, path = _get(seeded, "alice", path)
            names += [row[key] for row in rows]
            pages += 1
        assert len(names) == len(set(names)) == count and pages == 3
    resources, _ = _get(seeded, "alice", "/api/v1/resources")
    assert resources[-1]["name"] == "web01" and resources[-1]["protocols"]


def test_the_openapi_document_describes_paging(seeded: Seeded) -> None:
    paths = seeded.client.get("/api/v1/openapi.json").get_json()["paths"]
    for path in ("/sessions", "/activities", "/resources"):
        operation = paths[path]["get"]
        parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
        assert parameters["limit"]["maximum"] == MAX_LIMIT
        assert parameters["cursor"]["type"] == "string"
        assert parameters["cursor"]["minLength"] == 1
        assert "Link" in operation["responses"]["200"]["headers"]
        assert "422" in operation["responses"]
