"""Arrows point down (DESIGN.md): every import of a headrace package, wherever it sits
(module top, inside a function, under TYPE_CHECKING), goes to a lower layer.

An import inside a function to dodge a cycle is still a cycle, so function-level
imports count like any other.

Every module and package name under ``src/headrace`` is also used once only, so a
reader who jumps to ``sql_store.py`` or greps for ``headrace.state`` lands in one place.
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
    return (
        relative.parts[0].removesuffix(".py")
        if len(relative.parts) > 1 or relative.stem != "__init__"
        else "headrace"
    )


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
                upward.append(
                    f"{path.relative_to(SRC)}:{line} imports {module} ({source} -> {target})"
                )
    assert upward == []


def test_the_checker_sees_an_upward_import_inside_a_function(tmp_path: Path) -> None:
    code = "def f():\n    from headrace.engine.attempt import run_work_item\n"
    (tmp_path / "m.py").write_text(code)
    assert _imports(tmp_path / "m.py") == [(2, "headrace.engine.attempt")]
    assert LEVEL["engine"] > LEVEL["executors"]  # so such an import from executors fails


def _names_used_twice(root: Path) -> dict[str, list[str]]:
    """Module file names (``__init__.py`` aside) and package names under ``root`` that
    occur more than once, each with where: a reader jumping by name must land in one place."""
    where: dict[str, list[str]] = {}
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        if path.name == "__init__.py":
            if len(relative.parts) > 1:  # a package, known by its folder's name
                where.setdefault(relative.parts[-2], []).append(str(relative.parent) + "/")
        else:
            where.setdefault(path.stem, []).append(str(relative))
    return {name: paths for name, paths in where.items() if len(paths) > 1}


def test_module_and_package_names_are_unique() -> None:
    assert _names_used_twice(SRC) == {}, "rename the module (see the README's Layout)"


def test_the_name_check_sees_a_repeated_name(tmp_path: Path) -> None:
    for name in ("a/sql.py", "b/sql.py", "b/__init__.py", "c/b/__init__.py", "c/__init__.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("")
    assert _names_used_twice(tmp_path) == {"sql": ["a/sql.py", "b/sql.py"], "b": ["b/", "c/b/"]}
