"""A local HTTP server for download tests, with scripted faults per request.

``serve(path, data, replies=[...])`` publishes bytes at a path; each request to that path consumes the next
scripted :class:`Reply` (and falls back to a normal reply once the script is used up). A normal reply honours
``Range`` (206 with ``Content-Range``), sends ``ETag`` and ``Last-Modified`` and honours ``If-Range``. Faults:
``Reply(status=500)``, ``Reply(drop_after=N)`` (send headers for the whole body, N bytes, then close the socket),
``Reply(ignore_range=True)``, ``Reply(body=b"<html>...", content_type="text/html")``, ``Reply(delay=s)``,
``Reply(drip=s)`` (one body byte every s seconds).
Every request is recorded (method, path, headers) for assertions. Unknown paths get 404.

The server binds 127.0.0.1 on a free port, serves from daemon threads and is shut down when the ``http_server``
fixture's test ends; handlers time out so a stuck client cannot hang the test session.

    from tests.helpers.http_fixture import Reply  # the `http_server` fixture is registered in conftest.py

    def test_resume(http_server):
        url = http_server.serve("/f.zip", data, replies=[Reply(drop_after=100)])
"""

from __future__ import annotations

import hashlib
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

MAX_DELAY = 5.0  # seconds; scripted delays are capped so a test cannot stall the suite


@dataclass(frozen=True)
class Reply:
    """How to answer one request. Defaults give a normal, Range-aware 200/206 reply with the published bytes."""

    status: int | None = None  # force this status (e.g. 500, 404); the body is then a short text message
    body: bytes | None = None  # send these bytes instead of the published ones (e.g. an HTML error page)
    content_type: str | None = None  # override the published content type
    drop_after: int | None = None  # close the connection after this many body bytes
    ignore_range: bool = False  # answer 200 with the whole body even when Range is asked for
    delay: float = 0.0  # sleep before answering (to trigger client timeouts)
    drip: float = 0.0  # send the body one byte per this many seconds (a server too slow to finish)
    headers: dict[str, str] = field(default_factory=dict)  # extra response headers


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]


@dataclass
class _Resource:
    data: bytes
    content_type: str
    replies: list[Reply]
    etag: str


class HTTPFixture:
    """The server; use the ``http_server`` fixture rather than constructing it directly."""

    def __init__(self) -> None:
        self._resources: dict[str, _Resource] = {}
        self._lock = threading.Lock()
        self.requests: list[Request] = []
        fixture = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            timeout = 10

            def log_message(self, format: str, *args) -> None:  # keep test output clean
                pass

            def do_HEAD(self) -> None:
                fixture._answer(self, head=True)

            def do_GET(self) -> None:
                fixture._answer(self, head=False)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request, client_address) -> None:
                # Clients hanging up mid-reply is what fault tests provoke; anything else is a fixture bug.
                exc = sys.exc_info()[1]
                if not isinstance(exc, (ConnectionError, TimeoutError)):
                    fixture.errors.append("".join(traceback.format_exception(exc)))

        self.errors: list[str] = []
        self._server = Server(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()

    def serve(self, path: str, data: bytes, *, content_type: str = "application/octet-stream",
              replies: Sequence[Reply] = ()) -> str:
        """Publish ``data`` at ``path`` with a script of replies for the next requests; return its URL."""
        if not path.startswith("/"):
            path = "/" + path
        with self._lock:
            self._resources[path] = _Resource(data, content_type, list(replies),
                                              '"' + hashlib.sha256(data).hexdigest()[:16] + '"')
        return self.url(path)

    def url(self, path: str) -> str:
        return self.base_url + (path if path.startswith("/") else "/" + path)

    def requests_for(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        if self.errors:
            raise AssertionError("the test HTTP server failed:\n" + "\n".join(self.errors))

    def __enter__(self) -> HTTPFixture:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- request handling --------------------------------------------------------------------------------------

    def _answer(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        path = h.path.split("?", 1)[0]
        with self._lock:
            self.requests.append(Request(h.command, path, {k: v for k, v in h.headers.items()}))
            resource = self._resources.get(path)
            reply = resource.replies.pop(0) if resource and resource.replies else Reply()
        if reply.delay:
            time.sleep(min(reply.delay, MAX_DELAY))
        if resource is None:
            return self._send(h, 404, b"not found\n", "text/plain", {}, head=head)
        if reply.status is not None:
            return self._send(h, reply.status, reply.body or f"status {reply.status}\n".encode(),
                              reply.content_type or "text/plain", reply.headers, head=head)
        data = reply.body if reply.body is not None else resource.data
        ctype = reply.content_type or resource.content_type
        headers = {"ETag": resource.etag, "Last-Modified": "Mon, 24 Apr 2017 20:29:00 GMT", "Accept-Ranges": "bytes",
                   **reply.headers}
        status, start = 200, 0
        wanted = h.headers.get("Range")
        if_range = h.headers.get("If-Range")
        if wanted and not reply.ignore_range and (if_range is None or if_range in (resource.etag,
                                                                                    headers["Last-Modified"])):
            m = re.fullmatch(r"bytes=(\d+)-", wanted.strip())
            if m:
                start = int(m.group(1))
                if start >= len(data):
                    headers["Content-Range"] = f"bytes */{len(data)}"
                    return self._send(h, 416, b"", "text/plain", headers, head=head)
                status = 206
                headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        self._send(h, status, data[start:], ctype, headers, head=head, drop_after=reply.drop_after, drip=reply.drip)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str, headers: dict[str, str], *,
              head: bool, drop_after: int | None = None, drip: float = 0.0) -> None:
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(body)))
            for k, v in headers.items():
                h.send_header(k, v)
            if drop_after is not None:
                h.send_header("Connection", "close")
            h.end_headers()
            if head:
                return
            if drip:  # one byte at a time, for at most MAX_DELAY seconds, then the connection closes
                for i in range(min(len(body), int(MAX_DELAY / drip))):
                    h.wfile.write(body[i : i + 1])
                    h.wfile.flush()
                    time.sleep(drip)
                h.close_connection = True
                return
            h.wfile.write(body if drop_after is None else body[:drop_after])
            h.wfile.flush()
            if drop_after is not None:
                h.close_connection = True
                h.connection.shutdown(socket.SHUT_RDWR)
        except (BrokenPipeError, ConnectionResetError, OSError):
            h.close_connection = True


@pytest.fixture
def http_server() -> Iterator[HTTPFixture]:
    """A running local server; see the module docstring."""
    with HTTPFixture() as server:
        yield server
