"""``/api/v1/activities`` and ``/api/v1/resources``: what a session can be requested for,
named as the ``activity`` and ``resources`` of ``POST /sessions`` take them."""

from __future__ import annotations

from flask import Response, request

from pamcore.model import Activity, Resource
from pamcore.services.activities import page_activities
from pamcore.services.inventory import page_resources
from pamcore.web.api import api_user, bp, paged
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
        page = page_activities(db, request.args.get("limit"), request.args.get("cursor"))
        return paged(page, [_activity(a) for a in page.items])


@bp.get("/resources")
def resources() -> Response:
    with current_core().reader() as db:
        api_user(db)
        page = page_resources(db, request.args.get("limit"), request.args.get("cursor"))
        return paged(page, [_resource(r) for r in page.items])
