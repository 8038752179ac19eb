"""The DirectConnect login grammar native clients type: ``user+activity+resource``.

``user`` alone (pick from a menu), ``user+resource`` (when unambiguous) or
``user+activity+resource``. Spaces in names are written ``-`` (or ``_``); the core's name
look-ups (:func:`pamcore.services.common.by_name`) match them back case-insensitively.
Every protocol plugin formats and parses names here, so the grammar has one definition.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pamcore.errors import ValidationError

SEPARATOR = "+"
GRAMMAR = "user, user+resource or user+activity+resource"


@dataclass(frozen=True)
class DirectConnectName:
    username: str
    activity: str | None = None
    resource: str | None = None


def login_name(username: str, activity: str | None, resource: str | None) -> str:
    """``alice+Linux-Admin+web01``: what the Connection icon tells a native client to type."""
    parts = [p for p in (username, activity, resource) if p]
    return SEPARATOR.join(re.sub(r"\s+", "-", p.strip()) for p in parts)


def parse_login(text: str) -> DirectConnectName:
    """Split a login name; an empty part or more than three parts is a clear error."""
    parts = text.strip().split(SEPARATOR)
    if len(parts) > 3 or any(not p.strip() for p in parts):
        raise ValidationError("login", f"'{text}' is not {GRAMMAR}")
    parts = [p.strip() for p in parts]
    if len(parts) == 1:
        return DirectConnectName(parts[0])
    if len(parts) == 2:
        return DirectConnectName(parts[0], resource=parts[1])
    return DirectConnectName(parts[0], activity=parts[1], resource=parts[2])
