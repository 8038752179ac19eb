"""Plugins import only the public surface of pamcore (docs/design/proxy-kit.md §4).

An allow-list by name, walked over the plugin sources in this tree (not over what happens to
be installed), so a new core module is private until it is added here on purpose. Tests and
benches are not walked: they build their worlds through the services."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted([*ROOT.glob("pamcore_*/src/*"), *ROOT.glob("plugins/*/src/*")])
ANY = "*"
PUBLIC: dict[str, set[str] | str] = {
    "pamcore": {"hookimpl"},
    "pamcore.errors": ANY,
    "pamcore.registry": ANY,
    "pamcore.model": ANY,
    "pamcore.core": {"Pamcore"},
    "pamcore.config": {"Config"},
    "pamcore.proxy": ANY,
    "pamcore.webkit": ANY,
    "pamcore.clikit": ANY,
    "pamcore.actionkit": ANY,
    "pamcore.identitykit": ANY,
}


def imports(package: Path) -> Iterator[tuple[Path, int, str, list[str]]]:
    """Every import in ``package``: ``from x import a``, ``import x``, ``import_module("x")``
    (at any depth, ``TYPE_CHECKING`` blocks included: they couple just the same)."""
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                yield path, node.lineno, node.module, [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, node.lineno, alias.name, [ANY]
            elif (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "import_module"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                yield path, node.lineno, str(node.args[0].value), [ANY]


def refused(module: str, names: list[str]) -> list[str]:
    if module != "pamcore" and not module.startswith("pamcore."):
        return []
    allowed = PUBLIC.get(module)
    if allowed == ANY:
        return []
    return [n for n in names if allowed is None or n not in allowed]


def private_imports(package: Path) -> list[tuple[str, str, str]]:
    """(file:line, module, name) of every refused import."""
    return [
        (f"{path.relative_to(ROOT)}:{line}", module, name)
        for path, line, module, names in imports(package)
        for name in refused(module, names)
    ]


@pytest.mark.parametrize("package", SOURCES, ids=lambda p: p.name)
def test_plugins_import_only_the_public_surface(package: Path) -> None:
    bad = [
        f"{where}: from {module} import {name}" for where, module, name in private_imports(package)
    ]
    assert not bad, "private pamcore imports:\n" + "\n".join(bad)


def test_the_walk_finds_the_plugins() -> None:
    """A moved folder must not pass vacuously."""
    assert {p.name for p in SOURCES} >= {
        "pamcore_ssh",
        "pamcore_rdp",
        "pamcore_cisco_legacy",
        "pamcore_ldap",
        "pamcore_tcp_tunnel",
        "pamcore_ticket_validator",
    }


def test_a_private_import_is_found() -> None:
    tree = ast.parse("from pamcore.services.sessions import extend\nimport pamcore.web\n")
    found = [
        name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom | ast.Import)
        for name in refused(
            getattr(node, "module", None) or node.names[0].name,
            [a.name for a in node.names] if isinstance(node, ast.ImportFrom) else [ANY],
        )
    ]
    assert found == ["extend", ANY]
