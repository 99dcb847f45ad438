"""An HTTP server on a daemon thread: start, address, URL and stop, for the metrics endpoint and the operator page.

Both serve with the standard library's ``ThreadingHTTPServer`` next to the scan; this is the one place that owns
such a server's thread and its shutdown.
"""

from __future__ import annotations

import threading
from http.server import ThreadingHTTPServer

# serve_forever looks for shutdown() between requests every poll interval: 0.1 s makes stop() quick.
POLL_INTERVAL = 0.1
JOIN_TIMEOUT = 5.0  # s stop() waits for the serving thread


class ServerThread:
    """One HTTP server and the daemon thread serving it; ``what`` names it in errors, ``path`` ends its URL."""

    def __init__(self, what: str, path: str = "/") -> None:
        self.what = what
        self.path = path
        self.server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def start(self, server: ThreadingHTTPServer, name: str) -> tuple[str, int]:
        """Serve ``server`` on a daemon thread called ``name``; return the address it listens on."""
        self.server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(POLL_INTERVAL,), name=name, daemon=True)
        self._thread.start()
        return self.address

    @property
    def address(self) -> tuple[str, int]:
        if self.server is None:
            raise RuntimeError(f"{self.what} is not running")
        host, port = self.server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://[{host}]:{port}{self.path}" if ":" in host else f"http://{host}:{port}{self.path}"

    def stop(self) -> None:
        """Stop serving and close the socket (nothing when not running)."""
        if self.server is None:
            return
        self.server.shutdown()
        self.server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=JOIN_TIMEOUT)
        self.server = self._thread = None


class Serving:
    """For a class that serves through ``self.http`` (a ServerThread): its ``address`` and ``url``."""

    http: ServerThread

    @property
    def address(self) -> tuple[str, int]:
        return self.http.address

    @property
    def url(self) -> str:
        return self.http.url
