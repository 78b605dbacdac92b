"""The web process as deployed: gunicorn with deploy/gunicorn.conf.py, production settings.

Starts the real server on the test database and Redis, then probes it the way
the container health check (deploy/healthcheck.py) and the Kubernetes probes do.
"""

from __future__ import annotations

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
