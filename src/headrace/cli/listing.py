"""What ``headrace list`` shows of each pipeline file, cached until the file changes.

Listing a folder means importing every pipeline file, and pipeline files import
pyarrow, Polars, DuckDB and their own neighbours: seconds for a folder of examples.
The description of each file (its pipelines' name, schedule, task count, tags, owner)
is kept in ``$HEADRACE_HOME/cache/pipelines.json`` with the size and modification
time of the file and of every module it imported from its own folder tree; the next
``list`` imports only the files where one of those changed. Files that failed to load
are never cached (the fix may be outside the folder, e.g. an installed package).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

#: Bumped when the cached description changes shape.
VERSION = 1


def _stamp(path: Path) -> list[Any] | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return [str(path), stat.st_mtime_ns, stat.st_size]


def _fresh(entry: dict[str, Any]) -> bool:
    return all(_stamp(Path(dep[0])) == dep for dep in entry.get("deps", []))


def _describe(file: Path) -> tuple[list[dict[str, Any]], list[list[Any]] | None]:
    """Import ``file``; its pipelines and the files it depends on (itself and local modules).

    The dependencies are None (do not cache) when this process had imported the file
    before: what it imported then cannot be told any more.
    """
    from headrace.engine.loader import load_pipelines, module_name_for

    seen_before = module_name_for(file.resolve()) in sys.modules
    before = set(sys.modules)
    pipelines = load_pipelines(file)
    root = file.resolve().parent
    deps = [_stamp(file.resolve())]
    for name in set(sys.modules) - before:
        origin = getattr(sys.modules.get(name), "__file__", None)
        if origin and Path(origin).resolve().is_relative_to(root) and "site-packages" not in origin:
            deps.append(_stamp(Path(origin).resolve()))
    described = [
        {
            "name": p.name,
            "schedule": p.schedule_text,
            "tasks": len(p.tasks),
            "tags": list(p.tags),
            "owner": p.owner,
        }
        for p in sorted(pipelines.values(), key=lambda p: p.name)
    ]
    return described, None if seen_before else [d for d in deps if d is not None]


def describe_files(
    files: list[Path], cache_file: Path | None
) -> list[tuple[Path, list[dict[str, Any]] | Exception]]:
    """Each file with its pipelines' descriptions, or the error that loading it raised.

    Args:
        files: pipeline files, in the order to show.
        cache_file: where descriptions are cached; None to import every file.

    Returns:
        (file, descriptions or the :class:`headrace.errors.HeadraceError` raised).
    """
    from headrace import __version__
    from headrace.errors import HeadraceError

    key = f"{VERSION}:{__version__}:{sys.executable}"
    cache: dict[str, Any] = {}
    if cache_file is not None and cache_file.exists():
        try:
            loaded = json.loads(cache_file.read_text())
            cache = loaded["files"] if loaded.get("key") == key else {}
        except (OSError, ValueError, KeyError, TypeError):
            cache = {}
    out: list[tuple[Path, list[dict[str, Any]] | Exception]] = []
    changed = False
    for file in files:
        entry = cache.get(str(file.resolve()))
        if entry is not None and _fresh(entry):
            out.append((file, entry["pipelines"]))
            continue
        try:
            described, deps = _describe(file)
        except HeadraceError as exc:
            cache.pop(str(file.resolve()), None)
            out.append((file, exc))
            continue
        if deps is not None:
            cache[str(file.resolve())] = {"pipelines": described, "deps": deps}
            changed = True
        out.append((file, described))
    if changed and cache_file is not None:
        _save(cache_file, {"key": key, "files": cache})
    return out


def _save(cache_file: Path, content: dict[str, Any]) -> None:
    """Write the cache atomically; a cache that cannot be written is only slower, not wrong."""
    try:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        partial = cache_file.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(content))
        partial.replace(cache_file)
    except OSError:
        pass
