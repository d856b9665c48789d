"""Listing and previewing staged and exported files, never outside the headrace home.

A path argument is relative to the home. It is refused when it is absolute, holds
``..``, or resolves (following symlinks, at every level) outside the home; a symlink
found while listing is shown but never followed.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath

from headrace.errors import ConfigError

#: File types previewed as tables (through a read-only in-memory DuckDB).
TABLE_SUFFIXES = {
    ".parquet": "read_parquet",
    ".csv": "read_csv",
    ".json": "read_json_auto",
    ".ndjson": "read_json_auto",
    ".jsonl": "read_json_auto",
}


class PathRefusedError(ConfigError):
    """A path outside the headrace home (or one that would leave it through a symlink)."""

    def __init__(self, path: str, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"path {path!r} refused: {reason}; give a path relative to the headrace home"
        )
        self.path = path  # named (quoted) in the message above


def inside_home(home: Path, path: str) -> Path:
    """The resolved file or folder ``path`` names under ``home``; :class:`PathRefusedError` if it escapes.

    Args:
        home: the resolved headrace home.
        path: relative path ('' or '.' for the home itself).
    """
    if "\x00" in path:
        raise PathRefusedError(path, "it contains a NUL character")
    pure = PurePosixPath(path.replace("\\", "/"))
    if (
        pure.is_absolute()
        or Path(path).is_absolute()
        or (path[1:3] == ":/" if len(path) > 2 else False)
    ):
        raise PathRefusedError(path, "it is absolute")
    if ".." in pure.parts:
        raise PathRefusedError(path, "it contains '..'")
    target = (home / pure).resolve()
    if target != home and home not in target.parents:
        raise PathRefusedError(path, "it leads outside the home (through a symlink)")
    return target


def list_files(home: Path, path: str, limit: int) -> tuple[list[dict[str, object]], bool]:
    """Entries of a folder under ``home`` (recursively, sorted), at most ``limit``.

    Returns:
        ``[{"path", "type", "bytes"}]`` relative to the home, and whether it was cut.
    """
    folder = inside_home(home, path)
    if not folder.exists():
        raise ConfigError(f"{path!r}: no such file or folder under the headrace home")
    if folder.is_file():
        return [_entry(home, folder)], False
    entries: list[dict[str, object]] = []
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs.sort()
        for name in sorted(dirs) + sorted(files):
            if len(entries) >= limit:
                return entries, True
            entries.append(_entry(home, Path(root) / name))
    return entries, False


def _entry(home: Path, item: Path) -> dict[str, object]:
    rel = str(item.relative_to(home)) if item != home else "."
    if item.is_symlink():
        return {"path": rel, "type": "symlink", "bytes": None}
    if item.is_dir():
        return {"path": rel, "type": "folder", "bytes": None}
    return {"path": rel, "type": "file", "bytes": item.stat().st_size}


def preview_file(home: Path, path: str, rows: int, max_bytes: int) -> tuple[str, str]:
    """The first rows of a Parquet/CSV/JSON file, or the first bytes of a text file.

    Returns:
        ``(kind, text)``: kind ``table`` (columns and rows as a text table) or ``text``.
    """
    from headrace.mcp.sqlguard import text_table

    file = inside_home(home, path)
    if not file.is_file():
        raise ConfigError(f"{path!r}: not a file under the headrace home")
    reader = TABLE_SUFFIXES.get(file.suffix.lower())
    if reader is not None:
        import duckdb

        con = duckdb.connect(":memory:")
        try:
            cur = con.execute(f"SELECT * FROM {reader}(?) LIMIT ?", [str(file), rows])
            columns = [d[0] for d in cur.description or []]
            table, _ = text_table(columns, cur.fetchall(), max_bytes=max_bytes)
        except duckdb.Error as exc:
            raise ConfigError(f"{path!r}: cannot be read as {file.suffix[1:]}: {exc}") from exc
        finally:
            con.close()
        return "table", table
    with file.open("rb") as handle:
        data = handle.read(max_bytes + 1)
    if b"\x00" in data[:4096]:
        return "binary", f"{file.stat().st_size} bytes of binary data (not previewed)"
    text = data[:max_bytes].decode(errors="replace")
    if len(data) > max_bytes:
        text += f"\n… cut at {max_bytes} bytes of {file.stat().st_size}"
    return "text", text
