"""``/api/v1/activities`` and ``/api/v1/resources``: what a session can be requested for,
named as the ``activity`` and ``resources`` of ``POST /sessions`` take them."""

from __future__ import annotations

from flask import Response

from pamcore.model import Activity, Resource
from pamcore.services.activities import page_activities
from pamcore.services.inventory import page_resources
from pamcore.web.api import api_user, paged
from pamcore.web.api.models import Activity as ActivityOut
from pamcore.web.api.models import Paging
from pamcore.web.api.models import Resource as ResourceOut
from pamcore.web.api.operations import operation
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


def _limit(query: Paging) -> str | None:
    return None if query.limit is None else str(query.limit)


@operation(
    "GET",
    "/activities",
    "Activities, by the names POST /sessions takes, a page at a time",
    list[ActivityOut],
    query_model=Paging,
    errors=(422,),
    paged=True,
)
def activities(query: Paging) -> Response:
    with current_core().reader() as db:
        api_user(db)
        page = page_activities(db, _limit(query), query.cursor)
        return paged(page, [_activity(a) for a in page.items])


@operation(
    "GET",
    "/resources",
    "Resources, by the names POST /sessions takes, a page at a time",
    list[ResourceOut],
    query_model=Paging,
    errors=(422,),
    paged=True,
)
def resources(query: Paging) -> Response:
    with current_core().reader() as db:
        api_user(db)
        page = page_resources(db, _limit(query), query.cursor)
        return paged(page, [_resource(r) for r in page.items])
