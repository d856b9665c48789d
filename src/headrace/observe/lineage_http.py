"""The HTTP transport of OpenLineage events: one kept-alive connection, little CPU per event.

Events are POSTed one by one to ``url/endpoint`` as the client's ``HttpTransport`` does
(Marquez-compatible: ``Content-Type: application/json``, ``Authorization: Bearer <key>``
when a key is set). It does less work per event, which matters on the driver's GIL:
the request (head and body) goes out in one ``sendall`` (one system call, one packet for
a small event), and the answer is read by :class:`ResponseReader`, which reads the
status line, the few headers that frame the body (``Content-Length``,
``Transfer-Encoding``, ``Connection``) and the body from one buffer, instead of
``http.client``'s file object and e-mail header parser (~45 of the ~95 µs of CPU an
event cost over loopback).
"""

from __future__ import annotations

import json
from typing import Any

#: Most bytes of headers an answer may have (as ``http.client``'s limit of 100 lines would).
MAX_HEAD = 65536


class KeepAliveHttpTransport:
    """POSTs each event (JSON) to ``url/endpoint`` over one kept-alive connection.

    Any non-2xx answer or network error raises (the sender counts it). A kept-alive
    connection the receiver closed is reopened once; a receiver that is down costs one
    refused connection per event.

    Args:
        url, endpoint: where events go (``http://marquez:5000``, ``api/v1/lineage``).
        timeout: seconds to connect and for each read.
        api_key: sent as ``Authorization: Bearer <api_key>``.

    Example::

        transport = KeepAliveHttpTransport("http://localhost:5000", "api/v1/lineage", 5.0)
        transport.emit({"eventType": "START", ...})  # a JSON-ready dict, or a client event
    """

    kind = "http"

    def __init__(self, url: str, endpoint: str, timeout: float, api_key: str | None = None) -> None:
        from urllib.parse import urljoin, urlsplit

        full = urlsplit(urljoin(url.rstrip("/") + "/", endpoint.lstrip("/")))
        self.scheme, self.host, self.port = full.scheme, full.hostname or "localhost", full.port
        self.path = full.path + (f"?{full.query}" if full.query else "")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        host = self.host if self.port is None else f"{self.host}:{self.port}"
        lines = [
            f"POST {self.path or '/'} HTTP/1.1",
            f"Host: {host}",
            "Accept-Encoding: identity",
            *(f"{k}: {v}" for k, v in self.headers.items()),
        ]
        self._head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")
        self._conn: Any = None
        self._reader: ResponseReader | None = None
        #: connections opened so far (one while the receiver keeps it alive)
        self.connects = 0

    def emit(self, event: Any) -> None:
        """POST one event: a JSON-ready dict, or one of the client's event classes."""
        if isinstance(event, dict):  # build_event's: JSON-ready already
            body = json.dumps(event, separators=(",", ":")).encode()
        else:
            from openlineage.client.serde import Serde

            body = Serde.to_json(event).encode()
        self.post(body)

    def post(self, body: bytes) -> None:
        """POST one event's JSON body."""
        request = b"%s%d\r\n\r\n%s" % (self._head, len(body), body)
        for attempt in (1, 2):  # a kept-alive connection the server closed: reconnect once
            reused = self._conn is not None
            try:
                reader = self._connection()
                reader.sock.sendall(request)
                status, reason, will_close = reader.response()
            except OSError as exc:  # ConnectionError, TimeoutError, a malformed answer...
                self.close()
                if (
                    attempt == 2
                    or not reused
                    or isinstance(exc, ConnectionRefusedError | TimeoutError)
                ):
                    raise
                continue
            if will_close:
                self.close()
            if not 200 <= status < 300:
                raise ConnectionError(f"OpenLineage receiver answered {status} {reason}")
            return

    def _connection(self) -> ResponseReader:
        """The open connection's reader (HTTPS: TLS checked as ``http.client`` does by default)."""
        if self._reader is None:
            import http.client

            cls = (
                http.client.HTTPSConnection
                if self.scheme == "https"
                else http.client.HTTPConnection
            )
            conn = cls(self.host, self.port, timeout=self.timeout)
            conn.connect()
            self.connects += 1
            self._conn, self._reader = conn, ResponseReader(conn.sock)
        return self._reader

    def close(self, timeout: float = -1.0) -> bool:
        if self._conn is not None:
            self._conn.close()
        self._conn = self._reader = None
        return True


class MalformedResponse(ConnectionError):
    """The receiver's answer is not HTTP/1.x: the connection is dropped (an OSError, as a
    network error is: the transport retries once on a kept-alive connection, then raises)."""

    def __init__(self, what: str, data: bytes) -> None:
        self.what, self.data = what, data
        super().__init__(f"OpenLineage receiver's answer has a malformed {what}: {data[:200]!r}")


class ResponseReader:
    """Reads HTTP/1.x answers from one socket, buffered (RFC 9112 message framing).

    Args:
        sock: a connected socket (its timeout applies to each read).
    """

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self._buf = b""

    def response(self) -> tuple[int, str, bool]:
        """Read one final answer whole: (status, reason, whether the connection ends with
        it). Interim 1xx answers are skipped."""
        while True:
            head = self._head()
            status_line, _, header_block = head.partition(b"\r\n")
            parts = status_line.split(None, 2)
            if len(parts) < 2 or not parts[0].startswith(b"HTTP/1.") or not parts[1].isdigit():
                raise MalformedResponse("status line", status_line)
            status = int(parts[1])
            reason = parts[2].decode("latin-1").strip() if len(parts) > 2 else ""
            length, chunked, close, keep_alive = None, False, False, False
            for line in header_block.split(b"\r\n"):
                name, colon, value = line.partition(b":")
                if not colon:
                    continue
                name = name.strip().lower()
                if name == b"content-length":
                    if not value.strip().isdigit():
                        raise MalformedResponse("Content-Length", value)
                    length = int(value)
                elif name == b"transfer-encoding":
                    chunked = value.strip().lower().endswith(b"chunked")
                elif name == b"connection":
                    tokens = {t.strip().lower() for t in value.split(b",")}
                    close = close or b"close" in tokens
                    keep_alive = keep_alive or b"keep-alive" in tokens
            if 100 <= status < 200:
                continue  # 100 Continue, 103 Early Hints: the final answer follows
            will_close = close or (parts[0] == b"HTTP/1.0" and not keep_alive)
            if status in (204, 304):
                pass  # no body
            elif chunked:
                self._chunked()
            elif length is not None:
                self._take(length)
            else:  # the body runs to the end of the connection
                self._until_closed()
                will_close = True
            return status, reason, will_close

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionResetError("the OpenLineage receiver closed the connection")
        self._buf += data

    def _head(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n\r\n")
            if end >= 0:
                head, self._buf = self._buf[:end], self._buf[end + 4 :]
                return head
            if len(self._buf) > MAX_HEAD:
                raise MalformedResponse("head (too long)", self._buf)
            self._fill()

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line, self._buf = self._buf[:end], self._buf[end + 2 :]
                return line
            if len(self._buf) > MAX_HEAD:
                raise MalformedResponse("chunk line (too long)", self._buf)
            self._fill()

    def _take(self, n: int) -> None:
        """Read and drop ``n`` bytes of body."""
        while len(self._buf) < n:
            n -= len(self._buf)
            self._buf = b""
            self._fill()
        self._buf = self._buf[n:]

    def _chunked(self) -> None:
        while True:
            size_line = self._line().split(b";", 1)[0].strip()
            try:
                size = int(size_line, 16)
            except ValueError:
                raise MalformedResponse("chunk size", size_line) from None
            if size == 0:
                while self._line():  # trailers, up to the empty line
                    pass
                return
            self._take(size + 2)  # the chunk and its CRLF

    def _until_closed(self) -> None:
        self._buf = b""
        while self.sock.recv(65536):
            pass
