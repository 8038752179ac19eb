"""Reading admin forms: text, flags, numbers and name lists, with errors that name the
field (as the services' own :class:`ValidationError` does)."""

from __future__ import annotations

from werkzeug.datastructures import MultiDict

from pamcore.errors import ValidationError


class Form:
    """A submitted form; an absent text field reads as ``""``."""

    def __init__(self, data: MultiDict[str, str]) -> None:
        self.data = data

    def text(self, name: str) -> str:
        return self.data.get(name, "")

    def optional(self, name: str) -> str | None:
        """``None`` when the field was not sent (so the service leaves it as it is)."""
        return self.data.get(name)

    def flag(self, name: str) -> bool:
        """A checkbox: sent (any value) means on."""
        return name in self.data

    def number(self, name: str) -> int | None:
        """A whole number, or ``None`` when left empty."""
        text = self.text(name).strip()
        if not text:
            return None
        if not text.lstrip("-").isdigit():
            raise ValidationError(name, f"'{text}' is not a whole number")
        return int(text)

    def required_number(self, name: str) -> int:
        value = self.number(name)
        if value is None:
            raise ValidationError(name, "give a number")
        return value

    def names(self, name: str) -> list[str]:
        """A multi-select, or a comma-separated text field."""
        values = self.data.getlist(name)
        return [n.strip() for v in values for n in v.split(",") if n.strip()]
