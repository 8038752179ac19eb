"""The Create Session wizard: each step's validation, Back/Next keeping input, Finish."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from pamcore.core import Pamcore
from pamcore.model import ActivitySession, ConnectionProfile
from tests.web.helpers import Login, field_errors
from tests.world import World


def _walk(client: FlaskClient, **steps: dict) -> None:
    for step, data in steps.items():
        response = client.post(f"/sessions/new/{step}", data={**data, "go": "next"})
        assert response.status_code == 303, (step, field_errors(response.data))


@pytest.mark.parametrize("username", ["alice", "carol", "erin"])
def test_wizard_opens_for_every_role(login: Login, username: str) -> None:
    client = login(username)
    assert client.get("/sessions/new/").headers["Location"] == "/sessions/new/activity"
    assert client.get("/sessions/new/activity").status_code == 200


def test_activity_step(login: Login) -> None:
    client = login("alice")
    page = client.get("/sessions/new/activity").data.decode()
    assert "Linux Admin" in page and "Check out root" in page
    empty = client.post("/sessions/new/activity", data={"activity": "", "go": "next"})
    assert empty.status_code == 422 and field_errors(empty.data) == ["choose an activity"]
    unknown = client.post("/sessions/new/activity", data={"activity": "Nope", "go": "next"})
    assert field_errors(unknown.data) == ["no activity named &#39;Nope&#39;"]
    assert "Linux Admin" not in login("carol").get("/sessions/new/activity").data.decode()


def test_resource_step(login: Login) -> None:
    client = login("alice")
    _walk(client, activity={"activity": "Linux Admin"})
    page = client.get("/sessions/new/resources").data.decode()
    assert "web01" in page and "web02" in page and "db01" not in page
    assert "View Selections" in page
    none = client.post("/sessions/new/resources", data={"go": "next"})
    assert field_errors(none.data) == ["select at least one resource"]
    bad = client.post("/sessions/new/resources", data={"resources": ["db01"], "go": "next"})
    assert "no access policy grants alice" in field_errors(bad.data)[0]


def test_notes_step_follows_the_profile(core: Pamcore, world: World, login: Login) -> None:
    with core.unit() as db:
        profile = db.get(ConnectionProfile, world.approval.id)
        profile.notes_required = profile.ticket_required = True
    client = login("alice")
    _walk(client, activity={"activity": "Linux Admin"}, resources={"resources": ["web01"]})
    missing = client.post("/sessions/new/notes", data={"notes": "", "ticket": "", "go": "next"})
    assert field_errors(missing.data) == ["required by connection profile &#39;Approval&#39;"]


def test_schedule_step(login: Login) -> None:
    client = login("alice")
    _walk(
        client,
        activity={"activity": "Linux Admin"},
        resources={"resources": ["web01"]},
        notes={"notes": "n", "ticket": ""},
    )
    past = client.post(
        "/sessions/new/schedule",
        data={"when": "later", "date": "2026-11-27", "time": "09:00", "tz": "UTC", "go": "next"},
    )
    assert "is in the past" in field_errors(past.data)[0]
    blank = client.post("/sessions/new/schedule", data={"when": "later", "go": "next"})
    assert field_errors(blank.data) == ["give a date and a time, or choose Now"]


def test_back_and_next_keep_what_was_typed(login: Login) -> None:
    client = login("alice")
    _walk(
        client,
        activity={"activity": "Linux Admin"},
        resources={"resources": ["web01", "web02"]},
    )
    client.post("/sessions/new/notes", data={"notes": "kept notes", "ticket": "", "go": "back"})
    resources = client.get("/sessions/new/resources").data.decode()
    assert resources.count("checked") == 2
    assert "kept notes" in client.get("/sessions/new/notes").data.decode()


def test_scheduled_start_in_the_browser_zone_and_finish(
    app: Flask, core: Pamcore, login: Login
) -> None:
    client = login("alice")
    _walk(
        client,
        activity={"activity": "Linux Admin"},
        resources={"resources": ["web01"]},
        notes={"notes": "patch", "ticket": "CHG1"},
        schedule={"when": "later", "date": "2026-11-28", "time": "14:00", "tz": "Europe/Paris"},
    )
    review = client.get("/sessions/new/review").data.decode()
    assert 'datetime="2026-11-28T13:00:00+00:00"' in review  # 14:00 in Paris is 13:00 UTC
    done = client.post("/sessions/new/review", data={"go": "next"})
    assert done.status_code == 303 and done.headers["Location"] == "/active"
    with core.reader() as db:
        session = db.query(ActivitySession).one()
        assert session.notes == "patch" and session.ticket == "CHG1"
    active = client.get("/active").data.decode()
    assert "Waiting for Approval" in active and "created: Waiting for Approval" in active
    assert client.get("/sessions/new/review").data.decode().count("web01") == 0  # cleared
