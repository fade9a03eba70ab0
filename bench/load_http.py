"""The load generator's HTTP client: HTTP/1.1 on asyncio streams with keep-alive, and nothing else.

The bench runs the client on the same cores as the server it measures, so the client must cost little:
httpx's async client spent 5–16 ms of CPU per ask (its transport, pool, header models and an
``anyio`` layer), as much as the web process answering it — a load generator that is the bottleneck
measures nothing. Like wrk, this one only writes a request and parses a status line, headers and a
body (``Content-Length`` or chunked); it keeps connections open for the next request and closes one
whose response was not read to its end. The surface is the part of httpx the bench uses —
``post(url, json=…)``, ``stream("GET", url)`` with ``aiter_lines()`` — so :mod:`bench.load_core` reads
both alike. On loopback only: no TLS, no proxies, no redirects, no compression.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

HEAD_LIMIT = 64 * 1024  # bytes of status line and headers a response may have


class ProtocolError(Exception):
    """The server's bytes are not an HTTP/1.1 response this client understands."""


@dataclass(frozen=True)
class Response:
    """A whole response: status, headers (lower-case names) and body."""

    status_code: int
    headers: dict[str, str]
    content: bytes

    def json(self):
        return json.loads(self.content)


@dataclass
class Connection:
    """One keep-alive connection to the server."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    def close(self) -> None:
        self.writer.close()


class LeanClient:
    """Requests to one ``http://host:port`` over at most ``max_connections`` kept-alive connections."""

    def __init__(self, *, max_connections: int, connect_timeout_s: float = 30.0):
        self.gate = asyncio.Semaphore(max_connections)
        self.idle: dict[tuple[str, int], list[Connection]] = {}
        self.connect_timeout_s = connect_timeout_s

    async def __aenter__(self) -> LeanClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for connections in self.idle.values():
            for connection in connections:
                connection.close()
        self.idle.clear()

    async def post(self, url: str, *, json: object, headers: dict[str, str] | None = None) -> Response:
        body = _json_bytes(json)
        async with self.exchange("POST", url, headers={**(headers or {}), "Content-Type": "application/json"},
                                 body=body) as (connection, status, response_headers):
            content = await read_body(connection.reader, response_headers)
            return Response(status, response_headers, content)

    @contextlib.asynccontextmanager
    async def stream(self, method: str, url: str, *, headers: dict[str, str] | None = None
                     ) -> AsyncIterator[StreamingResponse]:
        """A response whose body is read as it arrives (SSE); the connection is reused only if it was read whole."""
        async with self.exchange(method, url, headers=headers or {}) as (connection, status, response_headers):
            response = StreamingResponse(status, response_headers, connection.reader)
            yield response
            if not response.finished:
                raise _Unfinished

    @contextlib.asynccontextmanager
    async def exchange(self, method: str, url: str, *, headers: dict[str, str], body: bytes = b""):
        """Send a request on a pooled connection; yields (connection, status, headers) with the body unread.

        The connection goes back to the pool when the block ends normally and the server keeps it alive;
        after any error (or a body left unread) it is closed."""
        parts = urlsplit(url)
        address = (parts.hostname or "127.0.0.1", parts.port or 80)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        async with self.gate:
            connection = await self.connection(address)
            reusable = False
            try:
                lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}"]
                lines += [f"{name}: {value}" for name, value in headers.items()]
                if body or method in ("POST", "PUT", "PATCH"):
                    lines.append(f"Content-Length: {len(body)}")
                connection.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
                status, response_headers = await read_head(connection.reader)
                try:
                    yield connection, status, response_headers
                except _Unfinished:
                    return
                reusable = response_headers.get("connection", "").lower() != "close"
            finally:
                if reusable:
                    self.idle.setdefault(address, []).append(connection)
                else:
                    connection.close()

    async def connection(self, address: tuple[str, int]) -> Connection:
        pool = self.idle.get(address)
        while pool:
            connection = pool.pop()
            if not connection.reader.at_eof():  # the server closed an idle one (its keep-alive timeout)
                return connection
            connection.close()
        reader, writer = await asyncio.wait_for(asyncio.open_connection(*address, limit=HEAD_LIMIT),
                                                self.connect_timeout_s)
        return Connection(reader, writer)


class _Unfinished(Exception):
    """A streamed body was left unread: its connection cannot carry another request."""


class StreamingResponse:
    """A response's status and headers, and its body as lines while they arrive."""

    def __init__(self, status: int, headers: dict[str, str], reader: asyncio.StreamReader):
        self.status_code, self.headers, self.reader = status, headers, reader
        self.finished = False

    async def aiter_lines(self) -> AsyncIterator[str]:
        """The body's lines (``\\n``-separated, a trailing ``\\r`` dropped), as httpx's ``aiter_lines``."""
        pending = b""
        async for chunk in body_chunks(self.reader, self.headers):
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.removesuffix(b"\r").decode()
        if pending:
            yield pending.removesuffix(b"\r").decode()
        self.finished = True


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    """The status code and the headers (names lower-cased; repeated ones joined with ", ")."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    if not version.startswith("HTTP/1."):
        raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return int(rest[:3]), headers


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    return b"".join([chunk async for chunk in body_chunks(reader, headers)])


async def body_chunks(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The body as it arrives: ``Content-Length`` bytes, or the chunks of a chunked one (no length: none)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";", 1)[0].strip(), 16)
            if size == 0:
                while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the empty line
                    pass
                return
            chunk = await reader.readexactly(size + 2)
            yield chunk[:-2]
    elif (length := int(headers.get("content-length") or 0)) > 0:
        yield await reader.readexactly(length)


def _json_bytes(value: object) -> bytes:
    return json.dumps(value).encode()
