"""The OpenAPI 3.1 document of ``/api/v1``, served at ``/api/v1/openapi.json``: generated
from the operation table and the pydantic models that check the requests
(:mod:`pamcore.web.api.operations`), so it says exactly what the server accepts."""

from __future__ import annotations

import functools
from typing import Any

from flask import Response
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from pamcore.web.api import bp
from pamcore.web.api.models import Problem
from pamcore.web.api.operations import OPERATIONS, Operation
from pamcore.web.api.problems import MEDIA_TYPE, json_response

REF = "#/components/schemas/{model}"
#: Errors any operation may answer with: a body that is not JSON, no or a bad credential.
COMMON = (400, 401)
#: Errors of any operation that changes something: it changed meanwhile (another won).
CHANGING = (409,)

INFO = {
    "title": "pamcore REST API",
    "version": "1",
    "description": "Activity sessions for scripts: the same rules as the dashboard and the "
    "CLI. Authenticate with 'Authorization: Bearer <token>' (pamcore users token create) or "
    "the dashboard's session cookie plus 'X-CSRFToken' on changes.",
    "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
}
SECURITY_SCHEMES = {
    "bearer": {"type": "http", "scheme": "bearer", "description": "An API token"},
    "cookie": {"type": "apiKey", "in": "cookie", "name": "pamcore_session"},
}
LINK_HEADER = {
    "description": "The next page's address, '<...>; rel=\"next\"' (RFC 8288): this query "
    "with the next cursor. Absent on the last page.",
    "schema": {"type": "string"},
}


def _models(op: Operation) -> list[type[BaseModel]]:
    answer = op.answer.__args__[0] if op.paged else op.answer
    return [m for m in (op.body_model, answer) if m is not None]


def _parameters(model: type[BaseModel] | None, where: str) -> list[dict[str, Any]]:
    """Path or query parameters, one per field of ``model``; an optional one is omitted
    rather than sent as null, so the null branch pydantic writes is left out."""
    if model is None:
        return []
    schema = model.model_json_schema(ref_template=REF)
    parameters = []
    for name, prop in schema["properties"].items():
        prop = dict(prop)
        prop.pop("title", None)
        description = prop.pop("description", None)
        default = prop.pop("default", None)
        if "anyOf" in prop:
            (prop,) = (s for s in prop.pop("anyOf") if s.get("type") != "null")
        if default is not None:
            prop["default"] = default
        parameter: dict[str, Any] = {
            "name": name,
            "in": where,
            "required": where == "path" or name in schema.get("required", []),
            "schema": prop,
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _content(schema: dict[str, Any], media_type: str = "application/json") -> dict[str, Any]:
    return {"content": {media_type: {"schema": schema}}}


def _operation(op: Operation, refs: dict[Any, dict[str, Any]]) -> dict[str, Any]:
    answer = op.answer.__args__[0] if op.paged else op.answer
    body = {"type": "array", "items": refs[answer]} if op.paged else refs[answer]
    success: dict[str, Any] = {"description": "Created" if op.status == 201 else "OK"}
    if op.paged:
        success["description"] = "One page, newest first"
        success["headers"] = {"Link": LINK_HEADER}
    success.update(_content(body))
    if op.links:
        success["links"] = {
            target: {"operationId": target, "parameters": parameters}
            for target, parameters in op.links.items()
        }
    errors = sorted({*COMMON, *op.errors, *(CHANGING if op.method != "GET" else ())})
    problem = {"description": "A problem (RFC 9457)", **_content(refs[Problem], MEDIA_TYPE)}
    described: dict[str, Any] = {
        "operationId": op.name,
        "summary": op.summary,
        "responses": {str(op.status): success, **{str(s): problem for s in errors}},
    }
    parameters = _parameters(op.path_model, "path") + _parameters(op.query_model, "query")
    if parameters:
        described["parameters"] = parameters
    if op.body_model is not None:
        described["requestBody"] = {"required": True, **_content(refs[op.body_model])}
    return described


@functools.cache
def document() -> dict[str, Any]:
    """Built once: the table is complete when the routes are registered."""
    models = {Problem, *(m for op in OPERATIONS for m in _models(op))}
    keyed = [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)]
    refs_by_key, definitions = models_json_schema(keyed, ref_template=REF)
    refs = {model: refs_by_key[(model, "validation")] for model in models}
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs)
    return {
        "openapi": "3.1.0",
        "info": INFO,
        "servers": [{"url": "/api/v1"}],
        "security": [{"bearer": []}, {"cookie": []}],
        "paths": paths,
        "components": {
            "schemas": definitions.get("$defs", {}),
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return json_response(document())
