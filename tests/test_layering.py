"""One direction of dependency: the core (bot/) never imports a platform adapter or SDK;
adapters import the core. bot/__main__.py, the composition root, is the one place that
starts adapters, and it imports them only inside the functions that start them."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = ("adapters", "discord", "lark_oapi")


def _imports(path: Path, top_level_only: bool) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    names: list[str] = []
    for node in nodes:
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_the_core_never_imports_adapters_or_platform_sdks() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "bot").rglob("*.py")
        if path.name != "__main__.py"
        for name in _imports(path, top_level_only=False)
        if name.split(".")[0] in FORBIDDEN
    ]
    assert offenders == []


def test_the_composition_root_imports_adapters_only_when_it_starts_them() -> None:
    top = _imports(ROOT / "bot" / "__main__.py", top_level_only=True)
    assert [n for n in top if n.split(".")[0] in FORBIDDEN] == []
