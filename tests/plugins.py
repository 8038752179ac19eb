"""Small plugins that tests in several folders register on the test core."""

from __future__ import annotations

from collections.abc import Callable

from pamcore import hookimpl
from pamcore.registry import ResourceSetting


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise ValueError(f"'{text}' is not a positive number of seconds")
    return int(text)


class SettingsPlugin:
    """Adds the resource setting ``testplug.timeout``, a positive number of seconds."""

    @hookimpl
    def pamcore_register_resource_settings(
        self, register: Callable[[ResourceSetting], None]
    ) -> None:
        register(ResourceSetting("testplug", "timeout", "connect timeout", parse=_positive))
