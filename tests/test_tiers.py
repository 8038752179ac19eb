"""The test tiers cannot rot: a test is marked from the peer fixtures it uses, and a test
that starts a peer program without its tier's marker fails instead of slowing the fast tier."""

from __future__ import annotations

import shutil
import tomllib
from pathlib import Path

import pytest

from pamcore.testing.tiers import TIER_FIXTURES, TIERS

ROOT = Path(__file__).resolve().parents[1]
MARKERS = """
[tool.pytest.ini_options]
markers = ["e2e: peers", "browser: Chromium", "slow: hypothesis"]
"""
PEER_FIXTURES = """
import pytest

@pytest.fixture(scope="session")
def sshd():
    return "a real sshd"

@pytest.fixture
def sshd_client(sshd):
    return "depends on sshd"

@pytest.fixture
def browser():
    return "Chromium"
"""


def test_the_repository_registers_the_tiers() -> None:
    ini = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert {line.split(":")[0] for line in ini["markers"]} >= set(TIERS)
    assert "--strict-markers" in ini["addopts"]


@pytest.mark.parametrize("name", sorted(set().union(*TIER_FIXTURES.values())))
def test_every_tier_fixture_is_defined_in_a_conftest(name: str) -> None:
    """A renamed peer fixture would stop marking its tests: the names must stay real."""
    conftests = [p for p in ROOT.rglob("conftest.py") if ".venv" not in p.parts]
    assert any(f"def {name}(" in path.read_text() for path in conftests)


def test_tests_are_marked_by_the_peers_they_use(pytester: pytest.Pytester) -> None:
    pytester.makepyprojecttoml(MARKERS)
    pytester.makeconftest(PEER_FIXTURES)
    pytester.makepyfile(
        """
        from hypothesis import given, strategies as st

        def test_direct(sshd): pass
        def test_through_another_fixture(sshd_client): pass
        def test_chromium(browser): pass
        @given(st.integers())
        def test_property(n): pass
        def test_unit(): pass
        """
    )

    items, _ = pytester.inline_genitems("-p", "pamcore.testing")
    tiers = {item.name: {tier for tier in TIERS if item.get_closest_marker(tier)} for item in items}
    assert tiers == {
        "test_direct": {"e2e"},
        "test_through_another_fixture": {"e2e"},
        "test_chromium": {"browser"},
        "test_property": {"slow"},
        "test_unit": set(),
    }


def test_tiers_are_off_where_the_markers_are_not_registered(pytester: pytest.Pytester) -> None:
    """Plugin authors loading pamcore.testing with --strict-markers are not broken."""
    pytester.makeconftest(PEER_FIXTURES)
    pytester.makepyfile("def test_direct(sshd): pass")
    items, _ = pytester.inline_genitems("-p", "pamcore.testing", "--strict-markers")
    assert [item.get_closest_marker("e2e") for item in items] == [None]


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the OpenSSH client")
def test_starting_a_peer_needs_the_tier_marker(pytester: pytest.Pytester) -> None:
    """``ssh -V`` only prints a version, yet an unmarked test may not start it, neither
    through subprocess nor through pexpect's fork and exec."""
    pytester.makepyprojecttoml(MARKERS)
    pytester.makepyfile(
        """
        import subprocess
        import pexpect
        import pytest

        def test_unmarked():
            subprocess.run(["ssh", "-V"], capture_output=True)

        def test_unmarked_pexpect():
            pexpect.spawn("ssh", ["-V"]).expect(pexpect.EOF)

        @pytest.mark.e2e
        def test_marked():
            subprocess.run(["ssh", "-V"], capture_output=True, check=True)
            pexpect.spawn("ssh", ["-V"]).expect(pexpect.EOF)
        """
    )
    result = pytester.runpytest("-p", "pamcore.testing")
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*test_unmarked starts ssh but is not marked e2e*"])
    result.stdout.fnmatch_lines(["*test_unmarked_pexpect starts ssh but is not marked e2e*"])
