"""Arrows point down (DESIGN.md): every import of a headrace package, wherever it sits
(module top, inside a function, under TYPE_CHECKING), goes to a lower layer.

An import inside a function to dodge a cycle is still a cycle, so function-level
imports count like any other.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "headrace"

#: Lowest first. A package may import packages of lower layers only (and itself).
LAYERS: list[set[str]] = [
    {"errors"},
    {"extras", "masking"},  # missing-extra messages; secrets masked when written
    {"config"},
    {"pipeline", "state", "queue", "connectors"},
    {"quality", "observe", "analytics", "tasks"},
    {"sync"},  # the declarative sync: on connectors and quality, used by the engine
    {"streams"},  # stream sources into the sync's exactly-once sink
    {"executors"},  # where a task runs; the engine hands them the attempt to run
    {"engine"},
    {"scheduler"},
    {"headrace"},  # the root facade: re-exports the definition API, the sync and run_pipeline
    {"web"},
    {"mcp"},  # the MCP server answers with the web API's response models
    {"cli"},
]
LEVEL = {name: level for level, names in enumerate(LAYERS) for name in names}


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "headrace"


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, n) for n in names if n == "headrace" or n.startswith("headrace.")]
    return found


def _module_package(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 or relative.stem != "__init__" else "headrace"


def test_every_package_has_a_layer() -> None:
    packages = {_module_package(p) for p in SRC.rglob("*.py")} - {"py"}
    assert packages - set(LEVEL) == set(), "place new packages in LAYERS (tests/test_layers.py)"


def test_imports_point_down() -> None:
    upward = []
    for path in sorted(SRC.rglob("*.py")):
        source = _module_package(path)
        for line, module in _imports(path):
            target = _package(module)
            if target == source:
                continue
            if LEVEL.get(target, -1) >= LEVEL.get(source, len(LAYERS)):
                upward.append(f"{path.relative_to(SRC)}:{line} imports {module} ({source} -> {target})")
    assert upward == []


def test_the_checker_sees_an_upward_import_inside_a_function(tmp_path: Path) -> None:
    code = "def f():\n    from headrace.engine.attempt import run_work_item\n"
    (tmp_path / "m.py").write_text(code)
    assert _imports(tmp_path / "m.py") == [(2, "headrace.engine.attempt")]
    assert LEVEL["engine"] > LEVEL["executors"]  # so such an import from executors fails
