"""Small local HTTP servers for the tests: an image host and a webhook receiver."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Route:
    """Answers in turn: each (status, body) once, the last one for ever after."""

    answers: list[tuple[int, bytes]]
    hits: int = 0

    def next(self) -> tuple[int, bytes]:
        answer = self.answers[min(self.hits, len(self.answers) - 1)]
        self.hits += 1
        return answer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: object = None  # what the on_request hook returned


@dataclass
class LocalServer:
    """A threaded HTTP server on 127.0.0.1 with scripted answers per path."""

    routes: dict[str, Route] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    on_request: Callable[[Received], object] | None = None
    default: tuple[int, bytes] = (404, b"not found")
    delay_seconds: float = 0.0  # answer this late (timeouts)

    def start(self) -> LocalServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                   self.rfile.read(length) if length else b"")
                if server.on_request:
                    request.verified = server.on_request(request)
                server.received.append(request)
                if server.delay_seconds:
                    time.sleep(server.delay_seconds)
                route = server.routes.get(self.path)
                status, body = route.next() if route else server.default
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "http://127.0.0.1:1/elsewhere")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, *args) -> None:  # keep test output quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self._server.server_port}{path}"

    def serve(self, path: str, *answers: tuple[int, bytes]) -> str:
        self.routes[path] = Route(list(answers))
        return self.url(path)


@contextmanager
def local_server(settings) -> Iterator[LocalServer]:
    """A LocalServer that the SSRF guard lets fetches and webhook deliveries reach (pytest-django settings)."""
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    server = LocalServer().start()
    try:
        yield server
    finally:
        server.stop()
