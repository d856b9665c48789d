"""The OpenLineage HTTP transport against a real TCP server answering exactly the bytes a
test scripts: every way HTTP/1.x frames an answer (Content-Length, chunked, to the end of
the connection, none), interim answers, closed and refused connections."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from headrace.observe.lineage_http import KeepAliveHttpTransport, MalformedResponse


class ScriptedServer:
    """Reads each POST whole, records its body, answers the next scripted bytes; a
    scripted ``close`` ends the connection after that answer (without saying so)."""

    def __init__(self, script: list[tuple[bytes, bool]]) -> None:
        self.script = list(script)
        self.bodies: list[dict[str, object]] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        self.connections = 0
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while self.script:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode().split("\r\n")
                headers = {k.lower(): v.strip() for k, v in (h.split(":", 1) for h in lines[1:])}
                length = int(headers["content-length"])
                while len(buf) < length:
                    buf += conn.recv(65536)
                body, buf = buf[:length], buf[length:]
                self.paths.append(lines[0].split()[1])
                self.headers.append(headers)
                self.bodies.append(json.loads(body))
                answer, close = self.script.pop(0)
                conn.sendall(answer)
                if close:
                    return

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[list[ScriptedServer]]:
    servers: list[ScriptedServer] = []
    yield servers
    for server in servers:
        server.close()


def scripted(servers: list[ScriptedServer], *script: tuple[bytes, bool]) -> ScriptedServer:
    server = ScriptedServer(list(script))
    servers.append(server)
    return server


CREATED = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"


def test_events_go_over_one_kept_alive_connection_whatever_frames_the_answers(
    serve: list[ScriptedServer],
) -> None:
    server = scripted(
        serve,
        (CREATED, False),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}",
            False,
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n",
            False,
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\ncontent-length: 4\r\n\r\nfine",
            False,
        ),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", False),
        (CREATED, False),
    )
    transport = KeepAliveHttpTransport(server.url, "/api/v1/lineage", 5.0)
    for i in range(7):
        transport.emit({"eventType": "START", "n": i})
    assert server.bodies == [{"eventType": "START", "n": i} for i in range(7)]
    assert server.paths == ["/api/v1/lineage"] * 7
    assert server.connections == transport.connects == 1


def test_an_answer_that_ends_the_connection_opens_a_new_one(
    serve: list[ScriptedServer],
) -> None:
    server = scripted(
        serve,
        (b"HTTP/1.1 201 Created\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", True),
        (b"HTTP/1.0 200 OK\r\n\r\nbody to the end", True),  # no length: read until closed
        (CREATED, False),
    )
    transport = KeepAliveHttpTransport(server.url, "api/v1/lineage", 5.0)
    for i in range(3):
        transport.emit({"n": i})
    assert [b["n"] for b in server.bodies] == [0, 1, 2]
    assert server.connections == transport.connects == 3


def test_a_kept_alive_connection_the_receiver_dropped_is_reopened_once(
    serve: list[ScriptedServer],
) -> None:
    server = scripted(serve, (CREATED, True), (CREATED, False))  # closes without saying so
    transport = KeepAliveHttpTransport(server.url, "api/v1/lineage", 5.0)
    transport.emit({"n": 1})
    transport.emit({"n": 2})  # the first send finds the connection gone, the second succeeds
    assert [b["n"] for b in server.bodies] == [1, 2]
    assert transport.connects == 2


def test_a_refusal_raises_with_the_status_and_the_connection_goes_on(
    serve: list[ScriptedServer],
) -> None:
    server = scripted(
        serve,
        (b"HTTP/1.1 400 Bad Request\r\nContent-Length: 7\r\n\r\ninvalid", False),
        (CREATED, False),
    )
    transport = KeepAliveHttpTransport(server.url, "api/v1/lineage", 5.0, api_key="k")
    with pytest.raises(ConnectionError, match="400 Bad Request"):
        transport.emit({"n": 1})
    transport.emit({"n": 2})
    assert transport.connects == 1
    assert [h["authorization"] for h in server.headers] == ["Bearer k", "Bearer k"]
    assert {h["content-type"] for h in server.headers} == {"application/json"}


def test_an_answer_that_is_not_http_raises(serve: list[ScriptedServer]) -> None:
    server = scripted(serve, (b"SSH-2.0-OpenSSH_9.6\r\n\r\n", True))
    transport = KeepAliveHttpTransport(server.url, "api/v1/lineage", 5.0)
    with pytest.raises(MalformedResponse, match="status line") as info:
        transport.emit({"n": 1})
    assert info.value.what == "status line" and info.value.data.startswith(b"SSH-2.0")


def test_nothing_listening_raises_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    transport = KeepAliveHttpTransport(f"http://127.0.0.1:{port}", "api/v1/lineage", 1.0)
    with pytest.raises(ConnectionRefusedError):
        transport.emit({"n": 1})
