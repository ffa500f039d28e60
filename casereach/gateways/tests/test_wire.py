"""The lean HTTP/1.1 client against a real local server that answers with scripted raw bytes:
keep-alive reuse, body framings, a server that closes idle connections, and every transport
failure with its name and whether the request may have been sent."""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest

from casereach.gateways.wire import WireError, WirePool, WireResponse

REQUEST = b"POST /send HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"


def ok(body: bytes, *headers: str) -> bytes:
    head = "".join(h + "\r\n" for h in headers)
    return f"HTTP/1.1 200 OK\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


@dataclass
class Server:
    """Answers each request with the next scripted action: bytes to write, "close" to
    hang up without a reply, or a number of seconds to stay silent."""

    script: list[bytes | str | float]
    connections: int = 0
    requests: list[bytes] = field(default_factory=list)
    close_after_reply: bool = False

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while self.script:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                self.requests.append(head + await reader.readexactly(length))
                action = self.script.pop(0)
                if action == "close":
                    break
                if isinstance(action, float):
                    await asyncio.sleep(action)
                    break
                assert isinstance(action, bytes)
                writer.write(action)
                await writer.drain()
                if self.close_after_reply:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def run(server: Server, body: Callable[[WirePool, int], Awaitable[None]]) -> None:
    async def main() -> None:
        srv = await asyncio.start_server(server.handle, "127.0.0.1", 0)
        port = srv.sockets[0].getsockname()[1]
        pool = WirePool()
        try:
            await body(pool, port)
        finally:
            pool.close()
            srv.close()
            await srv.wait_closed()

    asyncio.run(main())


def origin(port: int) -> tuple[str, str, int]:
    return ("http", "127.0.0.1", port)


def test_keep_alive_connection_is_reused() -> None:
    server = Server([ok(b"one"), ok(b"two"), ok(b"three")])
    bodies: list[bytes] = []

    async def body(pool: WirePool, port: int) -> None:
        for _ in range(3):
            bodies.append((await pool.request(origin(port), REQUEST, 5)).body)

    run(server, body)
    assert [b"one", b"two", b"three"] == bodies
    assert 1 == server.connections
    assert [REQUEST] * 3 == server.requests


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        (ok(b'{"id": 7}', "Content-Type: application/json"), b'{"id": 7}'),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"4\r\nabcd\r\n3;ext=1\r\nefg\r\n0\r\nX-Trailer: 1\r\n\r\n",
            b"abcdefg",
        ),
        (
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\nok",
            b"ok",
        ),
        (ok(gzip.compress(b"hello"), "Content-Encoding: gzip"), b"hello"),
    ],
    ids=["content-length", "chunked with trailer", "100 then 202", "gzip"],
)
def test_body_framings(reply: bytes, expected: bytes) -> None:
    server = Server([reply, ok(b"next")])
    got: list[bytes] = []

    async def body(pool: WirePool, port: int) -> None:
        got.append((await pool.request(origin(port), REQUEST, 5)).body)
        got.append((await pool.request(origin(port), REQUEST, 5)).body)

    run(server, body)
    assert [expected, b"next"] == got
    assert 1 == server.connections  # the framing left the connection reusable


def test_read_to_close_body_and_connection_close() -> None:
    server = Server(
        [
            b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil close",
            ok(b"x", "Connection: close"),
            ok(b"y"),
        ],
        close_after_reply=True,
    )
    got: list[WireResponse] = []

    async def body(pool: WirePool, port: int) -> None:
        for _ in range(3):
            got.append(await pool.request(origin(port), REQUEST, 5))

    run(server, body)
    assert [b"until close", b"x", b"y"] == [r.body for r in got]
    assert "text/plain" == got[0].header("content-type")
    assert 3 == server.connections


def test_server_closing_an_idle_connection_is_not_an_error() -> None:
    server = Server([ok(b"a"), ok(b"b")], close_after_reply=True)  # HTTP/1.1 yet it hangs up
    got: list[bytes] = []

    async def body(pool: WirePool, port: int) -> None:
        got.append((await pool.request(origin(port), REQUEST, 5)).body)
        await asyncio.sleep(0.05)  # the close reaches us while the connection is idle
        got.append((await pool.request(origin(port), REQUEST, 5)).body)

    run(server, body)
    assert [b"a", b"b"] == got
    assert 2 == server.connections


@pytest.mark.parametrize(
    ("action", "name"),
    [
        ("close", "RemoteProtocolError"),
        (0.5, "ReadTimeout"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", "RemoteProtocolError"),
        (b"SMTP ready\r\n\r\n", "RemoteProtocolError"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", "RemoteProtocolError"),
    ],
    ids=["hang-up", "silent", "short body", "not HTTP", "bad length"],
)
def test_failures_after_sending_may_have_been_delivered(
    action: bytes | str | float, name: str
) -> None:
    server = Server([action])
    errors: list[WireError] = []

    async def body(pool: WirePool, port: int) -> None:
        try:
            await pool.request(origin(port), REQUEST, 0.2)
        except WireError as exc:
            errors.append(exc)

    run(server, body)
    assert [(name, True)] == [(e.name, e.sent) for e in errors]
    assert [REQUEST] == server.requests


def test_connection_refused_was_not_sent() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: refused

        async def main() -> WireError:
            pool = WirePool()
            try:
                await pool.request(origin(port), REQUEST, 2)
            except WireError as exc:
                return exc
            finally:
                pool.close()
            raise AssertionError("no error")

        error = asyncio.run(main())
    assert ("ConnectError", False) == (error.name, error.sent)
