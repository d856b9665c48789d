"""Optional integrations and the one message a missing one gives.

The core install runs the embedded path (SQLite state, DuckDB warehouse, file
sources, checks, analytics, the CLI). Integrations whose packages are large or need
a server are extras of the ``headrace`` distribution; each import site asks for its
module through :func:`require`, so a missing package reads
``... needs the 'mysql' extra: pip install 'headrace[mysql]'`` at the point of use
instead of an ImportError traceback.

Example:
    >>> from headrace.extras import require
    >>> cx = require("mysql", "connectorx", "MySQL source")  # the module, or MissingExtraError
"""

from __future__ import annotations

import importlib
from types import ModuleType

from headrace.errors import ConfigError

# What each extra enables (README, messages); pyproject.toml lists their packages.
EXTRAS: dict[str, str] = {
    "postgres": "PostgreSQL sources, destinations, checks, SQL tasks and state store",
    "mysql": "MySQL/MariaDB sources and SQL tasks",
    "queue": "Redis job queues, `headrace worker` and the distributed executor",
    "web": "the web UI and its JSON API (`headrace web`)",
    "avro": "Avro file sources and Avro stream events",
    "streams": "stream sources: Redis Streams, NATS JetStream, Kinesis (`headrace stream`)",
    "metrics": "Prometheus `/metrics` in the web app",
    "polars": "Polars tables: task parameters and sync transforms taking pl.DataFrame/LazyFrame, Result.polars()",
    "pandas": "pandas DataFrames from analytics results",
    "mcp": "the MCP server for AI assistants (`headrace mcp`)",
    "lineage": "OpenLineage events (HTTP, file, console transports) and SQL column lineage",
    "lakehouse": "Delta Lake and Iceberg destinations, s3:// object storage",
    "spark": "Spark tasks (PySpark sessions from the [spark] settings)",
    "snowflake": "the Snowflake destination",
}


class MissingExtraError(ConfigError):
    """An integration was used whose optional packages are not installed.

    Args:
        extra: the ``headrace`` extra that installs them (``"mysql"``).
        module: the module that could not be imported (``"connectorx"``).
        feature: what was being used, for the message (``"MySQL source"``).
    """

    def __init__(self, extra: str, module: str, feature: str | None = None) -> None:
        self.extra = extra
        self.module = module
        self.feature = feature
        what = feature or EXTRAS.get(extra, f"the {extra!r} integration")
        super().__init__(
            f"{what} needs the {extra!r} extra (module {module!r} is not installed): "
            f"pip install 'headrace[{extra}]'"
        )

    def __reduce__(self) -> tuple[type, tuple[str, str, str | None]]:
        # Errors cross process boundaries (the process-pool executor): keep the fields.
        return (type(self), (self.extra, self.module, self.feature))


def require(extra: str, module: str, feature: str | None = None) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``extra``.

    Args:
        extra: the extra that provides the module.
        module: dotted module name to import.
        feature: what needs it, for the message (default: the extra's description).

    Returns:
        The imported module.

    Example:
        >>> fastavro = require("avro", "fastavro", "Avro file source")
    """
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        # Name the module that is actually absent (a dependency of ``module`` may be).
        missing = getattr(exc, "name", None) or module
        # The message names the absent module (exc.name); the ModuleNotFoundError adds nothing.
        raise MissingExtraError(extra, missing, feature) from None
