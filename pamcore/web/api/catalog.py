"""``/api/v1/activities`` and ``/api/v1/resources``: what a session can be requested for,
named as the ``activity`` and ``resources`` of ``POST /sessions`` take them."""

from __future__ import annotations

from flask import Response

from pamcore.model import Activity, Resource
from pamcore.services.activities import list_activities
from pamcore.services.inventory import list_resources
from pamcore.web.api import api_user, bp
from pamcore.web.api.problems import json_response
from pamcore.web.context import current_core


def _activity(activity: Activity) -> dict[str, str]:
    return {"name": activity.name, "description": activity.description, "kind": activity.kind}


def _resource(resource: Resource) -> dict[str, object]:
    return {
        "name": resource.name,
        "address": resource.address,
        "platform": resource.platform,
        "description": resource.description,
        "protocols": [{"name": p.name, "port": p.port} for p in resource.protocols],
    }


@bp.get("/activities")
def activities() -> Response:
    with current_core().reader() as db:
        api_user(db)
        return json_response([_activity(a) for a in list_activities(db)])


@bp.get("/resources")
def resources() -> Response:
    with current_core().reader() as db:
        api_user(db)
        return json_response([_resource(r) for r in list_resources(db)])
