"""Object storage (S3 and S3-compatible stores) from a named connection.

A connection holds the bucket, an optional prefix and the credentials, so paths in
pipeline code never carry secrets::

    HEADRACE_CONN_LANDING=s3://AKIA...:SECRET@my-bucket/landing?region=eu-west-1
    HEADRACE_CONN_LAKE=delta+s3://AKIA...:SECRET@my-bucket/lake?endpoint_url=http://127.0.0.1:9000

``endpoint_url`` points at an S3-compatible server (MinIO, a local emulator). Without
a key in the URL the libraries' own credential chain applies (environment, instance
role). The secret is shown only masked (``s3://AKIA...:***@my-bucket``): in messages,
``repr`` and the connection list.

Example:
    >>> store = ObjectStore.from_url("s3://k:s@bucket/landing?region=us-east-1")
    >>> store.uri("orders/*.csv")
    's3://bucket/landing/orders/*.csv'
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from headrace.config import mask_url
from headrace.errors import ConnectorError
from headrace.extras import require


@dataclass(frozen=True)
class ObjectStore:
    """Where objects live and how to reach them.

    Args:
        root: ``s3://bucket`` or ``s3://bucket/prefix``.
        key: the access key id (None: the default credential chain).
        secret: the secret access key.
        endpoint_url: an S3-compatible endpoint (None: AWS).
        region: the bucket's region.
        masked: the connection URL with the secret hidden (for messages).
    """

    root: str
    key: str | None = None
    secret: str | None = field(default=None, repr=False)
    endpoint_url: str | None = None
    region: str = "us-east-1"
    masked: str = ""

    @classmethod
    def from_url(cls, url: str) -> ObjectStore:
        """Parse ``[delta+]s3://[key:secret@]bucket[/prefix][?endpoint_url=...&region=...]``."""
        rest = url.split("://", 1)[1] if "://" in url else url
        parts = urlsplit("s3://" + rest)
        if not parts.hostname:
            raise ConnectorError(f"{mask_url(url)!r} names no bucket (s3://bucket/prefix).")
        options = dict(parse_qsl(parts.query))
        bucket = parts.hostname
        prefix = parts.path.rstrip("/")
        return cls(
            root=f"s3://{bucket}{prefix}",
            key=unquote(parts.username) if parts.username else None,
            secret=unquote(parts.password) if parts.password else None,
            endpoint_url=options.get("endpoint_url"),
            region=options.get("region", "us-east-1"),
            masked=mask_url(url),
        )

    def uri(self, path: str = "") -> str:
        """``path`` under this store's root (an ``s3://`` URI passes through)."""
        if path.startswith("s3://"):
            return path
        return f"{self.root}/{path.lstrip('/')}" if path else self.root

    def fsspec_options(self) -> dict[str, Any]:
        """Keyword arguments of ``s3fs.S3FileSystem``."""
        options: dict[str, Any] = {"client_kwargs": {"region_name": self.region}}
        if self.key:
            options.update(key=self.key, secret=self.secret)
        if self.endpoint_url:
            options["client_kwargs"]["endpoint_url"] = self.endpoint_url
        return options

    def delta_options(self) -> dict[str, str]:
        """deltalake's ``storage_options`` (object_store keys)."""
        options = {"AWS_REGION": self.region, "AWS_CONDITIONAL_PUT": "etag"}
        if self.key:
            options.update(AWS_ACCESS_KEY_ID=self.key, AWS_SECRET_ACCESS_KEY=self.secret or "")
        if self.endpoint_url:
            options["AWS_ENDPOINT_URL"] = self.endpoint_url
            if self.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        return options

    def iceberg_properties(self) -> dict[str, str]:
        """pyiceberg's ``s3.*`` catalog properties."""
        props = {"s3.region": self.region}
        if self.key:
            props.update({"s3.access-key-id": self.key, "s3.secret-access-key": self.secret or ""})
        if self.endpoint_url:
            props["s3.endpoint"] = self.endpoint_url
        return props

    def filesystem(self) -> Any:
        """An ``s3fs`` filesystem with these credentials (lakehouse extra)."""
        s3fs = require("lakehouse", "s3fs", "s3:// object storage")
        return s3fs.S3FileSystem(**self.fsspec_options())

    def fetch(self, pattern: str, into: Path) -> list[Path]:
        """Copy the objects matching ``pattern`` (a key, a prefix or a glob) into ``into``.

        Returns:
            The local copies, in the objects' sorted order; empty when nothing matched.
        """
        fs = self.filesystem()
        target = self.uri(pattern).removeprefix("s3://")
        try:
            if any(c in target for c in "*?["):
                keys = sorted(fs.glob(target))
            elif fs.isdir(target):
                keys = sorted(k for k in fs.find(target))
            else:
                keys = [target] if fs.exists(target) else []
            local = []
            for n, key in enumerate(keys):
                dest = into / f"{n:05d}_{key.rsplit('/', 1)[-1]}"
                fs.get_file(key, str(dest))
                local.append(dest)
        except (OSError, ValueError) as exc:
            raise ConnectorError(
                f"Reading {self.uri(pattern)!r} through {self.masked or self.root} failed: "
                f"{_masked(str(exc), self.secret)}"
            ) from exc
        return local


def _masked(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def local_copy(path: str, store: ObjectStore | None) -> tuple[str, Any]:
    """A local folder holding the objects of an ``s3://`` path (or the path as it is).

    Returns:
        ``(local path or glob, keeper)``: keep ``keeper`` alive while reading; the
        copies are removed with it.
    """
    if store is None and not path.startswith("s3://"):
        return path, None
    store = store or ObjectStore(root="s3://" + path.removeprefix("s3://").split("/", 1)[0])
    keeper = tempfile.TemporaryDirectory(prefix="headrace-s3-")
    found = store.fetch(path, Path(keeper.name))
    if not found:
        keeper.cleanup()
        raise ConnectorError(
            f"No objects found at {store.uri(path)!r} ({store.masked or store.root}); check the "
            "path or glob."
        )
    return keeper.name, keeper
