"""Meta-tests (datasette's habit): every hook is documented and every hook is tested.

A new hookspec without a docstring that says when it is called, what each argument is and
what it returns fails here; so does a hook whose name appears in no test file.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from pamcore import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(hookspecs.__all__)
TEST_FILES = sorted(
    p
    for pattern in ("tests/**/*.py", "plugins/*/tests/**/*.py", "pamcore_*/tests/**/*.py")
    for p in ROOT.glob(pattern)
    if p.resolve() != Path(__file__).resolve()
)


def spec(name: str) -> tuple[inspect.Signature, str, dict[str, object]]:
    func = getattr(hookspecs, name)
    opts = getattr(func, "pamcore_spec", {}) or {}
    return inspect.signature(func), inspect.getdoc(func) or "", opts


def test_hooks_are_found() -> None:
    assert len(HOOKS) >= 18
    assert all(name.startswith("pamcore_") for name in HOOKS)


@pytest.mark.parametrize("name", HOOKS)
def test_hook_is_documented(name: str) -> None:
    signature, doc, opts = spec(name)
    assert doc, f"{name} has no docstring"
    summary = doc.split("\n\n", 1)[0]
    assert summary.strip().endswith((".", ")")), f"{name}: the summary is one sentence"
    assert re.search(r"\bCalled\b", doc), f"{name}: say when it is called ('Called ...')"
    for param in signature.parameters:
        assert f":param {param}:" in doc, f"{name}: document the argument '{param}'"
    documented = set(re.findall(r":param (\w+):", doc))
    assert documented <= set(signature.parameters), f"{name}: documents a missing argument"
    if signature.return_annotation not in ("None", None):
        assert ":return:" in doc, f"{name}: say what it returns (':return:')"
    if opts.get("firstresult"):
        assert "Stops at first non-None result" in " ".join(doc.split()), (
            f"{name}: say it is firstresult"
        )


@pytest.mark.parametrize("name", HOOKS)
def test_hook_has_a_test(name: str) -> None:
    users = [p.relative_to(ROOT) for p in TEST_FILES if name in p.read_text(encoding="utf-8")]
    assert users, f"no test mentions {name}; add one (tests/test_plugin_host.py tests the façade)"


def test_every_hook_has_a_facade_method() -> None:
    """The core never calls ``pm.hook`` directly, so every hook needs its façade entry."""
    source = inspect.getsource(__import__("pamcore.plugins", fromlist=["Hooks"]).Hooks)
    missing = [name for name in HOOKS if name not in source]
    assert not missing, f"no façade method in pamcore.plugins.Hooks for {missing}"
