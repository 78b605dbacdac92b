"""The web process as deployed: gunicorn with deploy/gunicorn.conf.py, production settings.

Starts the real server on the test database and Redis, then probes it the way
the container health check (deploy/healthcheck.py) and the Kubernetes probes do,
and sends it the requests gunicorn refuses before Django sees them.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import PROJECT_DIR

HOST = "faces.example.test"
GUNICORN = Path(sys.executable).parent / "gunicorn"
PROXY_HEADERS = {"Host": HOST, "X-Forwarded-Proto": "https"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _production_env(port: int) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name != "DEBUG"}
    env.update(FACESERVICE_ENV="production", PORT=str(port), ALLOWED_HOSTS=HOST,
               SECRET_KEY="s" * 20 + "-deploy-test-secret-key-0123456789abcdef",
               KMS_PROVIDER="aws", KMS_KEY_ID="alias/faceservice-deploy-test",
               AUDIT_ANCHOR_KEY="a" * 40, WEB_CONCURRENCY="1", WEB_THREADS="2")
    return env


def _wait_until_started(port: int, server: subprocess.Popen, timeout: float = 120) -> None:
    """Like the startup probe: /healthz answers (the first request loads the URL conf)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"gunicorn exited: {server.stderr.read().decode()[-3000:]}")
        if _get(port, "/healthz", **PROXY_HEADERS) == 200:
            return
        time.sleep(0.5)
    raise AssertionError("gunicorn did not answer /healthz")


@pytest.fixture(scope="module")
def web(django_db_setup):
    port = _free_port()
    env = _production_env(port)
    server = subprocess.Popen([str(GUNICORN), "-c", "deploy/gunicorn.conf.py", "faceservice.wsgi"],
                              cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        _wait_until_started(port, server)
        yield port, env
    finally:
        server.terminate()
        server.wait(timeout=30)


def _get(port: int, path: str, **headers: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=60) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return 0  # not listening (yet)


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_container_health_check_passes(web):
    _, env = web
    result = subprocess.run([sys.executable, "deploy/healthcheck.py"], cwd=PROJECT_DIR, env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_probe_headers_are_needed(web):
    # Why the probes send Host and X-Forwarded-Proto: without them the answer is
    # not the probe's real status (a 301 would even count as success).
    port, _ = web
    assert _get(port, "/readyz", **PROXY_HEADERS) == 200
    assert _get(port, "/readyz", Host=HOST) == 301
    assert _get(port, "/readyz", **{"X-Forwarded-Proto": "https"}) == 400


def test_production_api_answers_json_over_the_proxy(web):
    port, _ = web
    assert _get(port, "/v1/tenant", **PROXY_HEADERS) == 401


def _raw(port: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (urllib would refuse most of these requests) and read the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


REFUSED_BY_GUNICORN = [
    # (what, raw request, status, code)
    ("a 10 kB request line", b"GET /v1/faces?cursor=" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
     414, "request_line_too_long"),
    ("a 20 kB header", b"GET /v1/faces HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
     431, "request_headers_too_large"),
    ("150 headers", b"GET /v1/faces HTTP/1.1\r\nHost: h\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(150))
     + b"\r\n", 431, "request_headers_too_large"),
    ("bytes that are not HTTP", b"NOT HTTP AT ALL\r\n\r\n", 400, "malformed_request"),
    ("a bad header name", b"GET /v1/faces HTTP/1.1\r\nHost: h\r\nBad Header: 1\r\n\r\n", 400, "malformed_request"),
]


@pytest.mark.parametrize(("what", "request_bytes", "status", "code"), REFUSED_BY_GUNICORN,
                         ids=[case[0] for case in REFUSED_BY_GUNICORN])
def test_what_gunicorn_refuses_is_answered_in_the_json_error_shape(web, what, request_bytes, status, code):
    # Gunicorn answers these before Django sees them; our worker class
    # (faceservice/gunicorn_worker.py) renders them like every other error.
    port, _ = web
    answered, headers, body = _raw(port, request_bytes)
    assert answered == status, body[:300]
    assert headers["Content-Type"] == "application/json"
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message", "request_id"}
    assert error["code"] == code and error["request_id"] == headers["X-Request-ID"]
    # Every code a client may see is documented.
    assert f"`{code}`" in (PROJECT_DIR / "docs" / "API.md").read_text()


def test_requests_within_the_limits_reach_django(web):
    # Just under gunicorn's limits, Django answers (here: 401 in JSON, no key).
    port, _ = web
    path = b"/v1/faces?cursor=" + b"a" * 8_000
    answered, headers, body = _raw(port, b"GET " + path + b" HTTP/1.1\r\nHost: " + HOST.encode()
                                   + b"\r\nX-Forwarded-Proto: https\r\nX-Big: " + b"b" * 8_000
                                   + b"\r\nConnection: close\r\n\r\n")
    assert answered == 401, body[:300]
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "unauthenticated"
