"""A lean asyncio HTTP/1.1 client for the dispatcher's hot path.

The ``http`` gateway type builds each request as bytes itself (see
``types/http/gateway.py``), so all this module does is move bytes: a keep-alive connection
pool per origin, one request at a time per connection, and a small response reader
(``Content-Length``, chunked, or read-to-close bodies; ``gzip``/``deflate`` decoded). No
redirects, no proxies, no cookies — the same choices as ``netpolicy.make_client``.

Per request it costs a small fraction of what httpx's sync client costs (measured by
``casereach bench dispatch``), which is most of the dispatcher's time with a fast provider.

Failures are reported with httpx's exception names, so that the retry classification and
the provider codes in the message log do not depend on the client used::

    RefusedConnect                   the address is forbidden (CASEREACH_GATEWAY_ALLOW_PRIVATE):
                                     nothing was sent, permanent
    ConnectError / ConnectTimeout    nothing was sent: retryable, outcome known
    WriteError / ReadError / ReadTimeout / RemoteProtocolError
                                     the request may have reached the provider: retryable,
                                     outcome unknown (retried with the same idempotency key)

A pool belongs to one event loop; it is not thread-safe (the dispatcher runs its loop in
whichever thread calls ``run_once``, one batch at a time).
"""

from __future__ import annotations

import asyncio
import select
import ssl
import time
import zlib
from dataclasses import dataclass
from typing import Any

from casereach.gateways import addresses

MAX_HEAD = 64 * 1024
MAX_BODY = 16 * 1024 * 1024
KEEPALIVE_S = 5.0  # an idle connection older than this is closed, not reused (as httpx)
CHECK_IDLE_S = 0.25  # an idle connection older than this is checked for a close first
WATCH_S = 0.05  # how often request deadlines are checked

Origin = tuple[str, str, int]  # scheme, host, port


class WireError(Exception):
    """A transport failure; ``name`` is httpx's name for it, ``sent`` whether the request
    may have reached the server."""

    def __init__(self, name: str, detail: str, *, sent: bool) -> None:
        super().__init__(f"{name}: {detail}" if detail else name)
        self.name = name
        self.detail = detail
        self.sent = sent


@dataclass(frozen=True, slots=True)
class WireResponse:
    status: int
    reason: str
    headers: list[tuple[str, str]]  # as received, in order
    body: bytes  # decoded from gzip/deflate when the server used them

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (case-insensitive), or None."""
        key = name.lower()
        for k, v in self.headers:
            if k.lower() == key:
                return v
        return None

    def text(self) -> str:
        """The body as text: the charset the server named, UTF-8 otherwise."""
        charset = "utf-8"
        content_type = self.header("content-type") or ""
        for piece in content_type.split(";")[1:]:
            name, _, value = piece.partition("=")
            if name.strip().lower() == "charset" and value.strip():
                charset = value.strip().strip('"')
        try:
            return self.body.decode(charset, errors="replace")
        except LookupError:
            return self.body.decode("utf-8", errors="replace")


class _Conn:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def close(self) -> None:
        self.writer.close()

    def usable(self, at: float) -> bool:
        """Whether an idle connection may carry another request (the server may have
        closed it while it sat in the pool)."""
        idle = at - self.idle_since
        if idle > KEEPALIVE_S or self.writer.is_closing() or self.reader.at_eof():
            return False
        if idle > CHECK_IDLE_S:
            # The loop may not have run since the server closed it: ask the socket.
            sock = self.writer.get_extra_info("socket")
            if sock is None:
                return False
            try:
                readable, _, _ = select.select([sock], [], [], 0)
            except (OSError, ValueError):
                return False
            if readable:  # EOF, or bytes nobody asked for: either way not reusable
                return False
        return True


class WirePool:
    """Keep-alive connections per origin."""

    def __init__(self, max_idle_per_origin: int = 64) -> None:
        self.max_idle = max_idle_per_origin
        self._idle: dict[Origin, list[_Conn]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._deadlines: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._watch: asyncio.TimerHandle | None = None

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            try:
                import certifi  # what httpx verifies against

                self._ssl = ssl.create_default_context(cafile=certifi.where())
            except ImportError:  # pragma: no cover - certifi comes with httpx
                self._ssl = ssl.create_default_context()
        return self._ssl

    def close(self) -> None:
        if self._watch is not None:
            self._watch.cancel()
            self._watch = None
        for conns in self._idle.values():
            for conn in conns:
                conn.close()
        self._idle.clear()

    def _take(self, origin: Origin) -> _Conn | None:
        conns = self._idle.get(origin)
        if not conns:
            return None
        at = time.monotonic()
        while conns:
            conn = conns.pop()
            if conn.usable(at):
                return conn
            conn.close()
        return None

    def _give_back(self, origin: Origin, conn: _Conn) -> None:
        conns = self._idle.setdefault(origin, [])
        if len(conns) >= self.max_idle:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        conns.append(conn)

    async def _connect(self, origin: Origin, timeout: float) -> _Conn:
        scheme, host, port = origin
        host = host.strip("[]")
        tls = self._ssl_context() if scheme == "https" else None
        try:
            async with asyncio.timeout(timeout):
                # Resolved once and checked (CASEREACH_GATEWAY_ALLOW_PRIVATE); the socket goes
                # to that address while TLS still verifies the host name.
                address = host
                if not addresses.private_addresses_allowed():
                    loop = asyncio.get_running_loop()
                    address = (await loop.run_in_executor(None, addresses.resolve_checked, host))[0]
                reader, writer = await asyncio.open_connection(
                    address,
                    port,
                    ssl=tls,
                    server_hostname=host if tls else None,
                    limit=MAX_HEAD,
                )
        except addresses.AddressRefused as exc:
            raise WireError("RefusedConnect", str(exc), sent=False) from None
        except addresses.UnresolvableHost as exc:
            raise WireError("ConnectError", str(exc), sent=False) from None
        except TimeoutError:
            raise WireError(
                "ConnectTimeout", f"no connection within {timeout:g} s", sent=False
            ) from None
        except (OSError, ssl.SSLError) as exc:
            raise WireError("ConnectError", str(exc) or type(exc).__name__, sent=False) from None
        return _Conn(reader, writer)

    async def request(self, origin: Origin, data: bytes, timeout: float) -> WireResponse:
        """Send one complete request (head and body bytes) and read the response.

        Raises:
            WireError: the transport failed (see the module docstring).
        """
        conn = self._take(origin)
        if conn is None:
            conn = await self._connect(origin, timeout)
        task = asyncio.current_task()
        assert task is not None
        self._arm(task, timeout)
        keep = False
        phase = "write"
        try:
            conn.writer.write(data)
            if conn.writer.transport.get_write_buffer_size() > 65536:
                await conn.writer.drain()
            phase = "read"
            response, keep = await _read_response(conn.reader)
        except asyncio.CancelledError:
            if task not in self._expired:
                raise
            self._expired.discard(task)
            task.uncancel()
            name = "WriteTimeout" if phase == "write" else "ReadTimeout"
            raise WireError(name, f"no reply within {timeout:g} s", sent=True) from None
        except asyncio.IncompleteReadError:
            raise WireError(
                "RemoteProtocolError", "server disconnected without a complete reply", sent=True
            ) from None
        except (asyncio.LimitOverrunError, ValueError) as exc:
            raise WireError("RemoteProtocolError", f"malformed reply: {exc}", sent=True) from None
        except (OSError, ssl.SSLError) as exc:
            name = "WriteError" if phase == "write" else "ReadError"
            raise WireError(name, str(exc) or type(exc).__name__, sent=True) from None
        finally:
            self._deadlines.pop(task, None)
            if not keep:
                conn.close()
        self._give_back(origin, conn)
        return response

    # Timeouts: one sweeper per pool instead of a timer per request (asyncio.timeout costs
    # several microseconds a request); a request is cancelled at most WATCH_S late.

    def _arm(self, task: asyncio.Task[Any], timeout: float) -> None:
        loop = task.get_loop()
        self._deadlines[task] = loop.time() + timeout
        if self._watch is None:
            self._watch = loop.call_later(WATCH_S, self._sweep, loop)

    def _sweep(self, loop: asyncio.AbstractEventLoop) -> None:
        self._watch = None
        at = loop.time()
        for task, deadline in list(self._deadlines.items()):
            if deadline <= at:
                del self._deadlines[task]
                self._expired.add(task)
                task.cancel()
        if self._deadlines:
            self._watch = loop.call_later(WATCH_S, self._sweep, loop)


async def _read_response(reader: asyncio.StreamReader) -> tuple[WireResponse, bool]:
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        status_line, _, header_block = head[:-4].partition(b"\r\n")
        version, _, rest = status_line.partition(b" ")
        code, _, reason_b = rest.partition(b" ")
        if not version.startswith(b"HTTP/1.") or len(code) != 3 or not code.isdigit():
            raise ValueError(f"bad status line {status_line[:80]!r}")
        status = int(code)
        if 100 <= status < 200:  # 100 Continue and friends: the real reply follows
            continue
        break
    headers: list[tuple[str, str]] = []
    length: int | None = None
    chunked = False
    connection = ""
    encoding = ""
    for line in header_block.decode("latin-1").split("\r\n") if header_block else ():
        name, sep, value = line.partition(":")
        if not sep:
            raise ValueError(f"bad header line {line[:80]!r}")
        name = name.strip()
        value = value.strip()
        headers.append((name, value))
        key = name.lower()
        if key == "content-length":
            if not value.isdigit():
                raise ValueError(f"bad Content-Length {value[:40]!r}")
            length = int(value)
        elif key == "transfer-encoding":
            chunked = "chunked" in value.lower()
        elif key == "connection":
            connection = value.lower()
        elif key == "content-encoding":
            encoding = value.lower()
    keep = "close" not in connection
    if version == b"HTTP/1.0":
        keep = "keep-alive" in connection
    if status in (204, 304):
        body = b""
    elif chunked:
        body = await _read_chunked(reader)
    elif length is not None:
        if length > MAX_BODY:
            raise ValueError(f"reply body of {length} bytes is too large")
        body = await reader.readexactly(length)
    else:
        body = await reader.read(MAX_BODY)
        keep = False
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            wbits = 31 if "gzip" in encoding else 15
            try:
                body = zlib.decompress(body, wbits)
            except zlib.error:
                if wbits != 15:
                    raise
                body = zlib.decompress(body, -15)  # raw deflate, as some servers send
        except zlib.error as exc:
            raise ValueError(f"cannot decode {encoding} body: {exc}") from None
    reason = reason_b.decode("latin-1").strip()
    return WireResponse(status, reason, headers, body), keep


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0].strip(), 16)  # ValueError: malformed
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY:
            raise ValueError("chunked reply body is too large")
        chunk = await reader.readexactly(size + 2)
        if chunk[-2:] != b"\r\n":
            raise ValueError("chunk not followed by CRLF")
        parts.append(chunk[:-2])
