"""The live view's web server: one page and a small JSON API, on 127.0.0.1 only.

Every API request must carry the session's token (header ``X-Optgen-Token``; the page reads it
from the address the command prints). A web page from elsewhere cannot send that header to
another origin without a CORS grant this server never gives, so no other site open in the
operator's browser can switch the laser on; the Host header must name this server (a DNS
rebinding attack names another host).

Routes: ``GET /`` the page; ``GET /api/describe``, ``GET /api/state``, ``GET /api/frame?after=N``
(JPEG, waits up to :data:`FRAME_WAIT_S` for a frame newer than N) or ``?index=K`` (a run's frame K),
``GET /api/image?index=K`` (a run's image K, PNG); ``POST /api/command`` with ``{"name": ..., "params": {...}}``.
"""

from __future__ import annotations

import errno
import json
import logging
import secrets
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Protocol
from urllib.parse import parse_qs, urlsplit

from optgen.drivers.errors import OptgenError

__all__ = ["FRAME_WAIT_S", "LiveApp", "LiveServer"]

log = logging.getLogger("optgen.live")

FRAME_WAIT_S = 2.0           # the longest a frame request waits for a newer frame
MAX_BODY_BYTES = 64 * 1024


class LiveApp(Protocol):
    """What the server serves: the live session (``optgen live``) or a run's frames (``optgen show``)."""

    def describe(self) -> dict: ...
    def state(self) -> dict: ...
    def frame(self, query: dict[str, str]) -> tuple[int, bytes] | None: ...
    def image(self, query: dict[str, str]) -> bytes | None: ...
    def command(self, name: str, params: dict) -> dict: ...
    def touch(self) -> None: ...


class LiveServer:
    """Serves ``app`` on 127.0.0.1:``port`` (0: a free port) from a background thread."""

    def __init__(self, app: LiveApp, port: int = 0, host: str = "127.0.0.1") -> None:
        self.app = app
        self.token = secrets.token_urlsafe(18)
        try:
            self.httpd = ThreadingHTTPServer((host, int(port)), _handler_for(self))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise OptgenError(f"--port {port}: {host}:{port} is already in use; choose another port, or "
                                  f"--port 0 for any free one") from None
            raise OptgenError(f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc})") from None
        self.httpd.daemon_threads = True
        self.host = host
        self.port = int(self.httpd.server_address[1])
        self.allowed_hosts = {f"{host}:{self.port}", f"localhost:{self.port}"}
        self._thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="optgen-live-http", daemon=True)

    @property
    def url(self) -> str:
        """The address to open (it carries the token)."""
        return f"http://{self.host}:{self.port}/?token={self.token}"

    def start(self) -> "LiveServer":
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (serve_forever notices within its 0.1 s poll) and close the socket."""
        if self._thread.is_alive():
            self.httpd.shutdown()
            self._thread.join(2.0)
        self.httpd.server_close()

    def __enter__(self) -> "LiveServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.close()


def _page() -> bytes:
    return resources.files("optgen.lab.live").joinpath("page.html").read_bytes()


def _handler_for(server: LiveServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "optgen-live"

        def log_message(self, format: str, *args) -> None:      # noqa: A002 (the base class's name)
            log.debug("live http: " + format, *args)

        # --- replies ---------------------------------------------------------------------
        def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            for key, value in (headers or {}).items():
                self.send_header(key, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _json(self, status: int, data: dict) -> None:
            self._send(status, json.dumps(data).encode(), "application/json")

        def _refuse(self, status: int, why: str) -> None:
            self._json(status, {"ok": False, "error": why})

        def _allowed(self, api: bool) -> bool:
            if self.headers.get("Host", "") not in server.allowed_hosts:
                self._refuse(HTTPStatus.FORBIDDEN, f"Host {self.headers.get('Host')!r}: this server answers only "
                                                   f"as {sorted(server.allowed_hosts)[0]}")
                return False
            if api and not secrets.compare_digest(self.headers.get("X-Optgen-Token", ""), server.token):
                self._refuse(HTTPStatus.FORBIDDEN, "missing or wrong X-Optgen-Token (open the address optgen printed)")
                return False
            return True

        # --- routes ----------------------------------------------------------------------
        def do_GET(self) -> None:        # noqa: N802 (http.server's name)
            self._answer(self._get)

        def do_POST(self) -> None:       # noqa: N802
            self._answer(self._post)

        def _answer(self, route) -> None:
            try:
                route()
            except (BrokenPipeError, ConnectionResetError):
                pass                      # the page went away mid-reply

        def _get(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            if parts.path in ("/", "/index.html"):
                if self._allowed(api=False):
                    self._send(HTTPStatus.OK, _page(), "text/html; charset=utf-8")
                return
            if not self._allowed(api=True):
                return
            app = server.app
            app.touch()
            if parts.path == "/api/describe":
                self._json(HTTPStatus.OK, app.describe())
            elif parts.path == "/api/state":
                self._json(HTTPStatus.OK, app.state())
            elif parts.path == "/api/frame":
                try:
                    got = app.frame(query)
                except OptgenError as exc:
                    self._refuse(HTTPStatus.BAD_REQUEST, str(exc))
                    return
                if got is None:
                    self._send(HTTPStatus.NO_CONTENT, b"", "image/jpeg")
                else:
                    seq, jpeg = got
                    self._send(HTTPStatus.OK, jpeg, "image/jpeg", {"X-Frame-Seq": str(seq)})
            elif parts.path == "/api/image":
                try:
                    png = app.image(query)
                except OptgenError as exc:
                    self._refuse(HTTPStatus.BAD_REQUEST, str(exc))
                    return
                if png is None:
                    self._refuse(HTTPStatus.NOT_FOUND, "no image here")
                else:
                    self._send(HTTPStatus.OK, png, "image/png")
            else:
                self._refuse(HTTPStatus.NOT_FOUND, f"{parts.path}: no such page")

        def _post(self) -> None:
            if not self._allowed(api=True):
                return
            if urlsplit(self.path).path != "/api/command":
                self._refuse(HTTPStatus.NOT_FOUND, f"{self.path}: no such command address (POST /api/command)")
                return
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY_BYTES:
                self._refuse(HTTPStatus.BAD_REQUEST, f"a command body of {length} bytes; expected 1 .. "
                                                     f"{MAX_BODY_BYTES} bytes of JSON")
                return
            try:
                body = json.loads(self.rfile.read(length))
            except ValueError as exc:
                self._refuse(HTTPStatus.BAD_REQUEST, f"the command is not JSON: {exc}")
                return
            if not isinstance(body, dict) or not isinstance(body.get("name"), str) \
                    or not isinstance(body.get("params", {}), dict):
                self._refuse(HTTPStatus.BAD_REQUEST, 'expected {"name": "...", "params": {...}}')
                return
            server.app.touch()
            result = server.app.command(body["name"], body.get("params", {}))
            self._json(HTTPStatus.OK if result.get("ok") else HTTPStatus.UNPROCESSABLE_ENTITY, result)

    return Handler
