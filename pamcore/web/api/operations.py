"""The table of ``/api/v1`` operations: :func:`operation` registers a view's route, checks
its path, query and body against its models before the view runs, and records the
operation for the OpenAPI document (:mod:`pamcore.web.api.openapi`). One declaration serves
both, so what the document promises is what the server checks."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pydantic
from flask import Response, request

from pamcore.errors import ValidationError
from pamcore.web.api import BadBody, bp
from pamcore.web.api.models import RULES


@dataclass(frozen=True)
class Operation:
    """One method at one address, as the document describes it."""

    method: str
    path: str  # OpenAPI form: /sessions/{session_id}
    name: str  # the view's name: the Flask endpoint and the operationId
    summary: str
    answer: Any  # the 2xx body's type (a model, or list[Model] for a page)
    status: int = 200
    errors: tuple[int, ...] = ()
    path_model: type[pydantic.BaseModel] | None = None
    query_model: type[pydantic.BaseModel] | None = None
    body_model: type[pydantic.BaseModel] | None = None
    paged: bool = False
    #: OpenAPI links from the answer to other operations, by operationId: parameter -> value.
    links: dict[str, dict[str, str]] = field(default_factory=dict)


OPERATIONS: list[Operation] = []


def _problem_of(error: pydantic.ValidationError) -> ValidationError:
    """The first thing wrong, as a 422 naming the input (``resources``, ``session_id``)."""
    first = error.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    name = loc[0] if loc else "body"
    where = f" (item {loc[1]})" if len(loc) > 1 and loc[1].isdigit() else ""
    if first["type"] == "extra_forbidden":
        return ValidationError(name, "is not an input of this operation")
    if first["type"] == "missing":
        return ValidationError(name, "is required")
    if name in RULES:
        return ValidationError(name, f"{RULES[name]}, not {str(first['input'])[:20]!r}")
    message = str(first["msg"]).removeprefix("Value error, ")
    return ValidationError(name, f"{message}{where}")


def _check(model: type[pydantic.BaseModel], values: dict[str, Any]) -> pydantic.BaseModel:
    try:
        return model.model_validate(values)
    except pydantic.ValidationError as error:
        raise _problem_of(error) from None


def _body(model: type[pydantic.BaseModel]) -> pydantic.BaseModel:
    """The JSON object the operation takes; anything but an object is a 400."""
    if not isinstance(request.get_json(silent=True), dict):
        raise BadBody("the body must be a JSON object (Content-Type: application/json)")
    try:  # JSON mode: strict types as JSON has them, times as RFC 3339 strings
        return model.model_validate_json(request.get_data())
    except pydantic.ValidationError as error:
        raise _problem_of(error) from None


def operation(
    method: str, path: str, summary: str, answer: Any, **described: Any
) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Register the decorated view for ``method path`` and describe it; the view gets the
    checked inputs as ``path``, ``query`` and ``body`` (those its operation has)."""

    def register(view: Callable[..., Response]) -> Callable[..., Response]:
        op = Operation(method, path, view.__name__, summary, answer, **described)
        OPERATIONS.append(op)

        @functools.wraps(view)
        def endpoint(**url_values: str) -> Response:
            inputs: dict[str, Any] = {}
            if op.path_model is not None:
                inputs["path"] = _check(op.path_model, url_values)
            if op.query_model is not None:
                inputs["query"] = _check(op.query_model, request.args.to_dict())
            if op.body_model is not None:
                inputs["body"] = _body(op.body_model)
            return view(**inputs)

        rule = re.sub(r"\{(\w+)\}", r"<\1>", path)
        bp.add_url_rule(rule, view.__name__, endpoint, methods=[method])
        return view

    return register
