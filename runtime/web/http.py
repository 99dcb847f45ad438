"""The operator page's HTTP server: static files, JSON, Server-Sent Events, and the write endpoints.

Standard library only (``ThreadingHTTPServer``), on its own threads: the scan never waits for it. One
publisher thread builds the live message once per sample and every open page (an SSE stream on its own
thread) sends that same encoded message, so five pages cost five socket writes per second, not five builds.

Safety of writes (``POST /api/write``, ``/api/alarm``):

* read-only unless ``site.web.token_file`` names a file holding a token; a write carries it in the
  ``X-Battplc-Token`` header, never a cookie, so another site's page cannot make the browser send it (CSRF);
* POST only, a JSON body (``Content-Type: application/json``, which a cross-site form cannot send without a
  CORS preflight, and none is ever granted);
* ``Origin``, when the browser sends one, must be this server; ``Host`` must be an IP address or
  ``localhost`` (a DNS name pointing at the controller is how a DNS-rebinding page would reach it);
* the value then takes the Modbus write path (runtime/web/actions.py): the same whitelist and range checks.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

log = logging.getLogger("battplc.web")

STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/app.css": ("app.css", "text/css; charset=utf-8")}
TOKEN_HEADER = "X-Battplc-Token"
MAX_BODY = 4096  # bytes: a write is a name and a value
KEEPALIVE = 15.0  # s: an SSE comment when nothing else was sent, so proxies and the page see a live stream
MAX_STREAMS = 16  # open pages at once: each holds a thread; more are refused rather than starving the host


def static_file(name: str) -> bytes:
    return resources.files("runtime.web").joinpath("static", name).read_bytes()


class Publisher:
    """Builds the live message when a new sample is taken and hands the same bytes to every stream."""

    def __init__(self, build: Callable[[], bytes | None], fresh: threading.Condition) -> None:
        self.build = build
        self.fresh = fresh  # notified when a new sample is taken
        self.message: bytes | None = None
        self.serial = 0
        self.changed = threading.Condition()
        self.streams = 0
        self._streams_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="web-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for condition in (self.fresh, self.changed):
            with condition:
                condition.notify_all()
        self._thread.join(timeout=5)

    def open_stream(self) -> bool:
        """Count a new page in, unless MAX_STREAMS are open."""
        with self._streams_lock:
            if self.streams >= MAX_STREAMS:
                return False
            self.streams += 1
            return True

    def close_stream(self) -> None:
        with self._streams_lock:
            self.streams -= 1

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            with self.fresh:
                self.fresh.wait(2.0)
            if self._stop.is_set() or self.streams == 0:
                continue  # nobody watching: build nothing
            try:
                message = self.build()
            except Exception:
                log.exception("web: building the live message failed")
                continue
            if message is None:
                continue  # no new sample since the last message
            with self.changed:
                self.message = message
                self.serial += 1
                self.changed.notify_all()

    def next(self, seen: int, timeout: float) -> tuple[int, bytes | None]:
        """The message after ``seen`` (waiting up to ``timeout``): (serial, bytes), or (seen, None)."""
        with self.changed:
            if self.serial == seen and not self._stop.is_set():
                self.changed.wait(timeout)
            if self.serial == seen or self.message is None:
                return seen, None
            return self.serial, self.message


class WebServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], app: Any) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.app = app
        super().__init__(address, Handler)


def host_allowed(host: str) -> bool:
    """An IP literal or localhost, with or without a port (see the module docstring: DNS rebinding)."""
    if host.startswith("["):
        name = host[1:].split("]", 1)[0]
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    if name == "localhost":
        return True
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


class Handler(BaseHTTPRequestHandler):
    server: WebServer
    timeout = 30  # a client that connects and sends nothing does not keep a thread forever
    protocol_version = "HTTP/1.1"

    # ---- plumbing -------------------------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        fields = {"Content-Type": content_type, "Content-Length": str(len(body)), "Cache-Control": "no-store",
                  "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", **(headers or {})}
        for key, value in fields.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, data: Any) -> None:
        self._send(status, json.dumps(data, separators=(",", ":")).encode(), "application/json")

    def _refuse(self, status: int, reason: str) -> None:
        log.warning("web: refused %s %s from %s: %s", self.command, self.path, self.client_address[0], reason)
        self._json(status, {"ok": False, "reason": reason})

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("web: %s %s", self.address_string(), format % args)

    # ---- GET ------------------------------------------------------------------------------------------------

    def do_GET(self) -> None:
        if not host_allowed(self.headers.get("Host", "")):
            self._refuse(403, "the Host header must be an IP address or localhost")
            return
        url = urlsplit(self.path)
        app = self.server.app
        if url.path in STATIC:
            name, content_type = STATIC[url.path]
            self._send(200, static_file(name), content_type)
        elif url.path == "/api/meta":
            self._json(200, app.meta())
        elif url.path == "/api/trends":
            every = parse_qs(url.query).get("every", ["60"])[0]
            try:
                seconds = float(every)
            except ValueError:
                self._refuse(400, f"every={every!r} is not a number of seconds")
                return
            self._json(200, app.sampler.trends.series(seconds))
        elif url.path == "/api/why":
            self._send(200, app.why(), "application/json")
        elif url.path == "/api/journal":
            self._json(200, app.alarms.journal())
        elif url.path.startswith("/api/chart/") and url.path.endswith(".svg"):
            chart = url.path.removeprefix("/api/chart/").removesuffix(".svg")
            step = parse_qs(url.query).get("step", [None])[0]
            svg, reason = app.diagram(chart, step)
            if svg is None:
                self._refuse(404, reason)
            else:
                self._send(200, svg, "image/svg+xml", {"Cache-Control": "max-age=3600"})
        elif url.path == "/api/events":
            self._stream()
        else:
            self._refuse(404, f"nothing at {url.path}")

    def _stream(self) -> None:
        """Server-Sent Events: each new live message (one per sample) until the page or the server goes."""
        publisher = self.server.app.publisher
        if not publisher.open_stream():
            self._refuse(503, f"{MAX_STREAMS} pages are open already; close one")
            return
        self.close_connection = True
        seen = publisher.serial  # the next message, built for this page: the last one may be minutes old
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"retry: 2000\n\n")
            self.wfile.flush()
            while not publisher.stopped:
                serial, message = publisher.next(seen, KEEPALIVE)
                if message is None:
                    self.wfile.write(b": keepalive\n\n")
                else:
                    seen = serial
                    self.wfile.write(b"data: " + message + b"\n\n")
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the page went away
        finally:
            publisher.close_stream()

    # ---- POST -----------------------------------------------------------------------------------------------

    def do_POST(self) -> None:
        app = self.server.app
        reason = self._forbidden(app.token)
        if reason:
            self._refuse(403, reason)
            return
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY:
            self._refuse(400, f"a write is a JSON body of 1..{MAX_BODY} bytes")
            return
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError as error:
            self._refuse(400, f"the body is not JSON: {error}")
            return
        if not isinstance(body, dict):
            self._refuse(400, "the body must be a JSON object")
            return
        path = urlsplit(self.path).path
        status, answer = app.act(path, body, self.client_address[0])
        if status != 200:
            self._refuse(status, answer["reason"])
        else:
            self._json(200, answer)

    def _forbidden(self, token: bytes | None) -> str | None:
        """Why this POST may not write, or None (see the module docstring)."""
        host = self.headers.get("Host", "")
        if not host_allowed(host):
            return "the Host header must be an IP address or localhost"
        origin = self.headers.get("Origin")
        if origin is not None and origin != f"http://{host}":
            return f"cross-origin request from {origin} refused"
        if self.headers.get_content_type() != "application/json":
            return "a write must be sent as application/json"
        if token is None:
            return "the page is read-only: writes are enabled by site.web.token_file"
        given = self.headers.get(TOKEN_HEADER, "").encode()
        if not given or not hmac.compare_digest(given, token):
            return "wrong or missing write token"
        return None
