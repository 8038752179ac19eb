"""What every admin page renders with: its template, and the names its pickers offer."""

from __future__ import annotations

from typing import Any

from flask import render_template
from sqlalchemy.orm import Session

from pamcore.services import activities, directory, inventory, profiles


def render(template: str, **context: Any) -> str:
    return render_template(f"admin/{template}", **context)


def pickers(db: Session) -> dict[str, list[str]]:
    """The names a form can pick from, by field."""
    return {
        "users": [u.username for u in directory.list_users(db)],
        "groups": [g.name for g in directory.list_groups(db)],
        "activities": [a.name for a in activities.list_activities(db)],
        "resources": [r.name for r in inventory.list_resources(db)],
        "profiles": [p.name for p in profiles.list_profiles(db)],
    }
