"""No log of a `./dev run` web process holds a query string or an API key (issue #18).

`./dev run` once switched on gunicorn's own access log, which writes each request
line (query strings: subject and asset ids) and the user name of Basic
authentication (a whole API key, when a client sends its key that way). The
service's own JSON access line (faceservice/api/middleware.py) is the only one
that may log requests, and it names the path alone.

This starts the web process exactly as `./dev run` does (faceservice/devservices.py
`web_server`: gunicorn with deploy/gunicorn.conf.py) on the test database, sends it
such requests, good and bad ones, and reads every log the run wrote: the web
process's output and the logs of the servers `./dev test` started.
"""

from __future__ import annotations

import base64
import os
import socket
import time
import uuid
from pathlib import Path

import pytest

from faceservice.devservices import free_port, web_server
from tests.conftest import unique_name

SUBJECT = f"secret-subject-{uuid.uuid4().hex[:8]}"
ASSET = f"secret-asset-{uuid.uuid4().hex[:8]}"
QUERY = f"subject_id={SUBJECT}&asset_id={ASSET}"


@pytest.fixture
def api_key(committed_db) -> str:
    """A key another process can see: committed, of a tenant of its own."""
    from audit.services import Actor
    from tenants import services

    actor = Actor.operator("tests")
    tenant = services.create_tenant(name=unique_name(), actor=actor)
    return services.create_api_key(tenant_id=tenant.id, name="logs", roles=["admin"], actor=actor).plaintext


def _server_logs() -> dict[Path, int]:
    """The logs of the servers `./dev test` started, with their sizes now (only what is written later counts)."""
    run_dir = Path(os.environ["FACESERVICE_RUN_DIR"])
    return {path: path.stat().st_size for path in run_dir.rglob("*.log")}


def _read_from(path: Path, offset: int) -> str:
    with path.open("rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def _send(port: int, request: bytes) -> int:
    """Send a raw request (urllib would refuse some of these) and return the answer's status."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def _get(port: int, target: str, *headers: str, host: str = "localhost") -> bytes:
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}", "Connection: close", *headers, "", ""]
    return "\r\n".join(lines).encode()


def _basic(user: str, password: str = "") -> str:
    return "Authorization: Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _wait_for_django(port: int, timeout: float = 120) -> None:
    # The port opens before the first request has loaded the URL conf and the models.
    deadline = time.monotonic() + timeout
    while _send(port, _get(port, "/healthz")) != 200:
        assert time.monotonic() < deadline, "the web process did not answer /healthz"
        time.sleep(0.5)


def test_no_log_of_the_web_process_holds_a_query_string_or_a_key(api_key, tmp_path):
    port = free_port()
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "1", "WEB_THREADS": "2"}
    web_log = tmp_path / "web.log"
    before = _server_logs()
    web = web_server(env, port, log_file=web_log)
    web.start()
    try:
        _wait_for_django(port)
        deep = b"[" * 1500 + b"]" * 1500
        answers = {
            "bearer": _send(port, _get(port, f"/v1/faces?{QUERY}", f"Authorization: Bearer {api_key}")),
            "basic user": _send(port, _get(port, f"/v1/faces?{QUERY}", _basic(api_key))),
            "basic both": _send(port, _get(port, f"/v1/faces?{QUERY}", _basic(api_key, api_key))),
            "unknown route": _send(port, _get(port, f"/v1/nope?{QUERY}", _basic(api_key))),
            "unknown host": _send(port, _get(port, f"/v1/faces?{QUERY}", _basic(api_key), host="evil.test")),
            "refused by gunicorn": _send(port, _get(port, f"/v1/faces?{QUERY}&pad={'x' * 9000}", _basic(api_key))),
            "deep json": _send(port, (f"POST /v1/search?{QUERY} HTTP/1.1\r\nHost: localhost\r\n"
                                      f"Authorization: Bearer {api_key}\r\nContent-Type: application/json\r\n"
                                      f"Content-Length: {len(deep)}\r\nConnection: close\r\n\r\n").encode() + deep),
        }
    finally:
        web.stop()
    assert answers == {"bearer": 200, "basic user": 401, "basic both": 401, "unknown route": 404,
                       "unknown host": 400, "refused by gunicorn": 414, "deep json": 400}
    logs = {web_log: _read_from(web_log, 0)}
    logs |= {path: _read_from(path, before.get(path, 0)) for path in _server_logs()}
    # The run did log: one JSON access line per request that reached Django, by path alone.
    assert logs[web_log].count('"logger": "faceservice.access"') >= 5, logs[web_log][-3000:]
    secret = api_key.split("_", 2)[2]  # fsk_<prefix>_<secret>: the secret may hold "_" itself
    for path, text in logs.items():
        for needle in (SUBJECT, ASSET, secret, base64.b64encode(f"{api_key}:".encode()).decode()):
            assert needle not in text, f"{needle!r} in {path.name}: …{text[max(0, text.find(needle) - 300):][:600]}"
