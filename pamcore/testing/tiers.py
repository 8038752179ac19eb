"""Test tiers: ``e2e`` (real peers), ``browser`` (Chromium) and ``slow`` (hypothesis,
schemathesis, the README tour), so ``-m "not e2e and not browser and not slow"`` is a fast
inner loop.

Tests are marked from what they use, not from memory: a test whose fixtures include a
real-peer fixture is ``e2e``, a ``browser`` fixture ``browser``, a ``@given`` test ``slow``.
A guard catches the rest: a test that starts a peer program (``sshd``, ``ssh``, ``Xvfb``,
``xfreerdp``, ``chromium``...) without its tier's marker fails, saying which marker it needs.
All of this is on only in projects that register the ``e2e`` marker, so plugin authors who
load ``pamcore.testing`` without tiers see no change.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Generator, Iterable
from typing import Any

import pytest

#: Fixtures that start a real peer process, by the tier a test using them belongs to.
TIER_FIXTURES: dict[str, frozenset[str]] = {
    "e2e": frozenset({"sshd", "legacy_sshd", "xvfb_display", "xrdp_target", "shadow_target"}),
    "browser": frozenset({"browser"}),
}
#: Programs that only a test of the tier may start (the guard's list).
TIER_PROGRAMS: dict[str, frozenset[str]] = {
    "e2e": frozenset(
        {"sshd", "ssh", "xrdp", "xrdp-sesman", "Xvfb", "xfreerdp", "freerdp-shadow-cli"}
    ),
    "browser": frozenset({"chromium", "chromedriver"}),
}
TIERS = ("e2e", "browser", "slow")
#: Audit events that start a program in this process, or replace a forked child by one.
_SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.exec"})


def tiers_enabled(config: pytest.Config) -> bool:
    """Whether the project opted in by registering the ``e2e`` marker."""
    return any(line.split(":", 1)[0].strip() == "e2e" for line in config.getini("markers"))


def tiers_of(fixturenames: Iterable[str], test: object) -> set[str]:
    """The tiers a test belongs to, from its fixture closure and its function."""
    names = set(fixturenames)
    found = {tier for tier, fixtures in TIER_FIXTURES.items() if names & fixtures}
    if getattr(test, "is_hypothesis_test", False):
        found.add("slow")
    return found


def mark_tiers(items: list[pytest.Item]) -> None:
    for item in items:
        for tier in sorted(tiers_of(getattr(item, "fixturenames", ()), getattr(item, "obj", None))):
            if not item.get_closest_marker(tier):
                item.add_marker(tier)


def program_of(event: str, args: tuple[Any, ...]) -> str:
    """The basename of the program an audit event starts ("" when it cannot tell)."""
    if event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        if executable is None and argv:
            executable = argv if isinstance(argv, str | bytes | os.PathLike) else argv[0]
    else:  # os.posix_spawn and os.exec: (path, argv, env)
        executable = args[0]
    return os.path.basename(os.fsdecode(executable)) if executable else ""


class PeerGuard:
    """Refuses to start a peer program while a test without its tier's marker runs."""

    def __init__(self) -> None:
        self.running: str | None = None  # the running test's node id
        self.allowed: frozenset[str] = frozenset()

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if event not in _SPAWN_EVENTS or self.running is None:
            return
        program = program_of(event, args)
        for tier, programs in TIER_PROGRAMS.items():
            if program in programs and tier not in self.allowed:
                # OSError: what a failed exec raises, so a forked child reports it and exits.
                raise OSError(
                    errno.EPERM,
                    f"{self.running} starts {program} but is not marked {tier}: use a "
                    f"{tier} fixture ({', '.join(sorted(TIER_FIXTURES[tier]))}) or mark it",
                )

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Generator[None, object, object]:
        outer = self.running, self.allowed  # pytester runs a session inside a test
        self.running = item.nodeid
        self.allowed = frozenset(tier for tier in TIERS if item.get_closest_marker(tier))
        try:
            return (yield)
        finally:
            self.running, self.allowed = outer


#: One guard per process: audit hooks cannot be removed, so a nested session reuses it.
_guard: PeerGuard | None = None


def install_guard(config: pytest.Config) -> None:
    global _guard
    if _guard is None:
        _guard = PeerGuard()
        sys.addaudithook(_guard.audit)
    config.pluginmanager.register(_guard, "pamcore-peer-guard")
