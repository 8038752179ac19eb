"""The codecs in ``pamcore_rdp.pdu`` import nothing of pamcore nor of the proxy
(docs/design/proxy-kit.md §6): they parse and encode bytes, and stay testable alone."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pamcore_rdp.pdu

PDU = Path(pamcore_rdp.pdu.__file__).parent


def imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """(line, module) of every absolute import in ``path``, ``import_module`` calls too."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
        ):
            yield node.lineno, str(node.args[0].value)


def refused(module: str) -> bool:
    """pamcore itself, or a pamcore_rdp module outside ``pdu``."""
    top = module.split(".")[0]
    if top == "pamcore":
        return True
    return top == "pamcore_rdp" and not (
        module == "pamcore_rdp.pdu" or module.startswith("pamcore_rdp.pdu.")
    )


def test_the_walk_finds_the_codecs() -> None:  # a moved folder must not pass vacuously
    assert {p.stem for p in PDU.glob("*.py")} >= {"wire", "x224", "mcs", "gcc", "prompt"}


def test_rdp_codecs_import_nothing_of_pamcore() -> None:
    bad = [
        f"{path.name}:{line}: {module}"
        for path in sorted(PDU.rglob("*.py"))
        for line, module in imported_modules(path)
        if refused(module)
    ]
    assert not bad, "pdu imports outside the codecs:\n" + "\n".join(bad)


def test_the_check_refuses_what_it_should() -> None:
    assert refused("pamcore") and refused("pamcore.errors") and refused("pamcore_rdp.proxy.relay")
    assert refused("pamcore_rdp.settings")
    assert not refused("pamcore_rdp.pdu.wire") and not refused("PIL.Image")
    assert not refused("pamcore_rdpx")
