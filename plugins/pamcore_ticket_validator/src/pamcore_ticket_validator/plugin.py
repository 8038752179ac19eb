"""Ticket numbers on session requests must look like your ticketing system's.

The module imports nothing but pamcore, so it also works as a single file dropped into an
instance's plugins folder (``plugins_dir``), without installing the distribution.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from pamcore import hookimpl
from pamcore.errors import ConfigurationError
from pamcore.registry import RequestProblem

if TYPE_CHECKING:
    from pamcore.model import User

PATTERN_ENV = "PAMCORE_TICKET_PATTERN"
#: ServiceNow-style numbers: incident, change or request, then 6 to 10 digits.
DEFAULT_PATTERN = r"^(INC|CHG|REQ)\d{6,10}$"
DEFAULT_EXAMPLE = "CHG0012345"


def ticket_pattern() -> re.Pattern[str]:
    """Read the pattern on every request, so an operator's change needs no restart."""
    text = os.environ.get(PATTERN_ENV) or DEFAULT_PATTERN
    try:
        return re.compile(text)
    except re.error as exc:
        raise ConfigurationError(
            f"{PATTERN_ENV} is not a valid regular expression: {exc}"
        ) from None


@hookimpl
def pamcore_validate_session_request(
    requester: User, activity_name: str, resource_names: list[str], notes: str, ticket: str
) -> list[RequestProblem] | None:
    if not ticket:
        return None  # whether a ticket is required is the connection profile's rule
    pattern = ticket_pattern()
    if pattern.fullmatch(ticket):
        return None
    if pattern.pattern == DEFAULT_PATTERN:
        hint = f"INC, CHG or REQ followed by 6 to 10 digits, e.g. {DEFAULT_EXAMPLE}"
    else:
        hint = f"it must match {pattern.pattern}"
    return [RequestProblem("ticket", f"'{ticket}' is not a ticket number: {hint}")]
