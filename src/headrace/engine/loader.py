"""Loading pipeline files, with definition mistakes reported by file and line.

A pipeline file is imported like a module (its folder goes on ``sys.path`` so it can
import its neighbours). Every top-level :class:`Pipeline` in it is found. Workers use
:func:`find_pipeline` to import a file once per process and pick one pipeline from it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import re
import sys
import threading
import traceback
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

from headrace.errors import DefinitionError, HeadraceError, did_you_mean
from headrace.pipeline import Pipeline

_MODULE_PREFIX = "headrace_pipelines"
#: A module is in sys.modules before its code has run: without this lock, a second thread
#: importing the same file at once (two MCP tool calls) would see it half-executed.
_IMPORT_LOCK = threading.RLock()


#: What a file that defines a pipeline says: ``@pipeline``, ``some_sync.pipeline(...)``
#: (a sync or stream sync on its own) or ``Pipeline(...)``. Files without it are not imported.
_DEFINES = re.compile(r"@pipeline\b|\.pipeline\(|\bPipeline\(")
#: Folders never searched for pipeline files.
_SKIP = frozenset({".venv", "venv", "node_modules", ".git", "__pycache__", ".headrace"})


def pipeline_files(path: Path) -> list[Path]:
    """A pipeline file, or the ``.py`` files under a folder (recursively) that define pipelines.

    A file counts when its text has ``@pipeline``, ``.pipeline(`` or ``Pipeline(``; test
    modules (``test_*.py``, ``conftest.py``) and virtualenvs are not imported.

    Example:
        >>> [f.name for f in pipeline_files(Path("examples"))][:2]
        ['airflow_port.py', 'branching_pipeline.py']
    """
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DefinitionError("no such file or folder", path=str(path))
    found = []
    for candidate in sorted(path.rglob("*.py")):
        if _SKIP & set(candidate.relative_to(path).parts) or candidate.name.startswith(
            ("test_", "conftest")
        ):
            continue
        try:
            if _DEFINES.search(candidate.read_text(errors="replace")):
                found.append(candidate)
        except OSError:
            continue
    return found


def module_name_for(path: Path) -> str:
    """The module name a pipeline file is imported under (stable for one absolute path)."""
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:10]
    stem = "".join(c if c.isalnum() else "_" for c in path.stem)
    return f"{_MODULE_PREFIX}.{stem}_{digest}"


def import_pipeline_file(path: str | Path) -> ModuleType:
    """Import a pipeline file once per process; mistakes become a DefinitionError naming file:line.

    Args:
        path: the ``.py`` file.
    """
    with _IMPORT_LOCK:
        return _import_pipeline_file(path)


def _import_pipeline_file(path: str | Path) -> ModuleType:
    file = Path(path).resolve()
    name = module_name_for(file)
    cached = sys.modules.get(name)
    if cached is not None:
        return cached
    if not file.is_file():
        hint = ""
        if file.parent.is_dir():
            hint = did_you_mean(file.name, [p.name for p in file.parent.glob("*.py")])
        raise DefinitionError("no such pipeline file." + hint, path=str(path))
    if _MODULE_PREFIX not in sys.modules:
        package = ModuleType(_MODULE_PREFIX)
        package.__path__ = []
        sys.modules[_MODULE_PREFIX] = package
    spec = importlib.util.spec_from_file_location(name, file)
    if spec is None or spec.loader is None:  # pragma: no cover - only for non-.py paths
        raise DefinitionError("cannot be imported as a Python file", path=str(path))
    module = importlib.util.module_from_spec(spec)
    folder = str(file.parent)
    if folder not in sys.path:
        sys.path.append(folder)
    sys.modules[name] = module  # before exec, so dataclasses and pickling can find it
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        del sys.modules[name]
        raise DefinitionError(
            f"syntax error: {exc.msg}", path=f"{exc.filename or file}:{exc.lineno}"
        ) from exc
    except BaseException as exc:
        del sys.modules[name]
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        wrapped = _definition_error(exc, file)
        if wrapped is exc:
            raise
        raise wrapped from exc
    return module


def _definition_error(exc: BaseException, file: Path) -> DefinitionError:
    """Wrap an exception raised while importing ``file``, adding the line it came from."""
    line = 0
    for frame in traceback.extract_tb(exc.__traceback__):
        if Path(frame.filename).resolve() == file:
            line = frame.lineno or 0
    message = str(exc)
    if isinstance(exc, DefinitionError):
        # Most of our messages already start with the file:line where the mistake is.
        if message.startswith(str(file)):
            return exc
        located = DefinitionError(message, path=f"{file}:{line}")
        for name, value in exc.fields().items():  # kept as fields; the message names them already
            if name != "path":
                setattr(located, name, value)
        return located
    kind = "import error" if isinstance(exc, ImportError) else "error"
    return DefinitionError(
        f"{kind} while loading the pipeline file: {type(exc).__name__}: {message}",
        path=f"{file}:{line}",
    )


def pipelines_in(module: ModuleType) -> dict[str, Pipeline]:
    """Every top-level Pipeline of a module, by name; two with one name is a DefinitionError."""
    found: dict[str, Pipeline] = {}
    for value in vars(module).values():
        if isinstance(value, Pipeline):
            other = found.get(value.name)
            if other is not None and other is not value:
                raise DefinitionError(
                    f"pipeline name {value.name!r} is already used at {other.file}:{other.line}; pass "
                    "name=... to one of them",
                    path=f"{value.file}:{value.line}",
                )
            found[value.name] = value
    return found


def load_pipelines(path: str | Path) -> dict[str, Pipeline]:
    """Import a pipeline file and return its pipelines by name.

    Args:
        path: a ``.py`` file defining one or more ``@pipeline`` functions.

    Returns:
        name -> Pipeline. Definition mistakes (cycles, unknown or duplicate tasks, bad
        policy values, an import error inside the file) raise :class:`DefinitionError`
        naming the file and line.

    Example:
        >>> pipelines = load_pipelines("examples/hello_pipeline.py")
        >>> sorted(pipelines)
        ['hello']
    """
    module = import_pipeline_file(path)
    found = pipelines_in(module)
    if not found:
        raise DefinitionError(
            "defines no pipeline (decorate a function with @pipeline)", path=str(path)
        )
    return found


class FileError(NamedTuple):
    """A pipeline file that could not be loaded, and why (the error names file:line)."""

    file: Path
    error: HeadraceError


def duplicate_name(name: str, first: str | None, second: str | None) -> DefinitionError:
    """The error for one pipeline name defined in two files, naming both."""
    return DefinitionError(
        f"pipeline name {name!r} is defined in two files: {first} and {second}; "
        "pipeline names must be unique (pass name=... to one of them)",
        path=str(second),
        pipeline=name,
    )


def discover(paths: Path | list[Path]) -> tuple[dict[str, Pipeline], list[FileError]]:
    """The pipelines of files and folders, by name, and the files that failed to load.

    One rule set for every command that takes a folder of pipelines (``list``,
    ``scheduler``, ``docs``, ``web --pipelines``, ``mcp --pipelines``):

    * a folder means the files :func:`pipeline_files` finds under it (recursively);
      one of them that turns out to define no pipeline is skipped;
    * a file given by name must define a pipeline, else its error says so;
    * a file that fails to import is reported (its error names file:line), not raised:
      one broken file does not hide the others;
    * one pipeline name in two files is reported on the second file, naming both; the
      first keeps the name.

    Each caller decides what the errors mean (shown, or refused).

    Example:
        >>> pipelines, errors = discover(Path("examples"))
        >>> "hello" in pipelines
        True
    """
    found: dict[str, Pipeline] = {}
    origin: dict[str, Path] = {}  # name -> the file it was found in
    errors: list[FileError] = []
    for root in [paths] if isinstance(paths, Path) else paths:
        try:
            files = pipeline_files(root)
        except HeadraceError as exc:
            errors.append(FileError(root, exc))
            continue
        for file in files:
            try:
                defined = (
                    load_pipelines(file)
                    if root.is_file()
                    else pipelines_in(import_pipeline_file(file))
                )
            except HeadraceError as exc:
                errors.append(FileError(file, exc))
                continue
            for name, pipeline in defined.items():
                first = origin.get(name)
                if first is not None and first.resolve() != file.resolve():
                    errors.append(FileError(file, duplicate_name(name, str(first), str(file))))
                    continue
                found[name] = pipeline
                origin[name] = file
    return found, errors


def pick_pipeline(pipelines: dict[str, Pipeline], name: str | None, where: str) -> Pipeline:
    """The pipeline called ``name``, or the only one when ``name`` is None."""
    if name is None:
        if len(pipelines) == 1:
            return next(iter(pipelines.values()))
        raise DefinitionError(
            f"defines several pipelines ({', '.join(sorted(pipelines))}); "
            f"choose one with {where}:NAME",
            path=str(where),
        )
    try:
        return pipelines[name]
    except KeyError:
        raise DefinitionError(
            f"no such pipeline in this file; it defines {', '.join(sorted(pipelines))}."
            + did_you_mean(name, pipelines),
            path=str(where),
            pipeline=name,
        ) from None


def find_pipeline(file: str, module: str, name: str) -> Pipeline:
    """The pipeline ``name`` from an already imported module, else by importing ``file``.

    Workers call this for every work item; the file is imported once per process.
    """
    mod = sys.modules.get(module)
    if mod is not None and _same_file(getattr(mod, "__file__", None), file):
        found = pipelines_in(mod).get(name)
        if found is not None:
            return found
    pipelines = pipelines_in(import_pipeline_file(file))
    if name not in pipelines:
        raise DefinitionError(
            f"no top-level pipeline {name!r}; a pipeline run by worker processes must be "
            "defined at module level (or run it with executor='inprocess')."
            + did_you_mean(name, pipelines),
            path=file,
        )
    return pipelines[name]


def _same_file(a: str | None, b: str) -> bool:
    if a is None:
        return False
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:  # pragma: no cover
        return False
