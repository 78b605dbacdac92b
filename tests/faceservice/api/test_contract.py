"""The API keeps its contract: schemathesis fuzzes the live server from its own OpenAPI schema.

Every check is on (no server errors, documented status codes, content types,
headers and bodies against the schema, schema-invalid data refused) with
positive and negative data, and the stateful phase follows the schema's links
(a created key, job or webhook used by the next call). Bounded by examples per
operation and a time budget so that it stays a few minutes of CI.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

MAX_EXAMPLES = 10
TIME_BUDGET_SECONDS = 180
CONFIG = Path(__file__).with_name("schemathesis.toml")
REVOKE = "DELETE /v1/api-keys/{api_key_id}"


@pytest.fixture
def contract_key(committed_db, settings) -> str:
    """A committed tenant and a key holding every role, so that no operation is only ever refused."""
    from audit.services import Actor
    from tenants import services
    from tenants.models import Role

    # The fuzzer sends thousands of requests a minute: rate limits are tested elsewhere.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
        "api_key": "1000000/min", "client_ip": "1000000/min"}}
    tenant = services.create_tenant(name=f"contract-{os.urandom(4).hex()}", actor=Actor.operator("tests"))
    issued = services.create_api_key(tenant_id=tenant.id, name="contract test", roles=list(Role.values),
                                     actor=Actor.operator("tests"))
    return issued.plaintext


@pytest.fixture
def live_server_url(committed_db) -> Iterator[str]:
    """The WSGI app served over real HTTP from a thread, on the committed database.

    Not pytest-django's live_server: that one flushes every table afterwards,
    and the audit log refuses to be truncated (it is append-only).
    """
    from django.core.handlers.wsgi import WSGIHandler
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args) -> None:  # our access log has the one line per request
            pass

    server = ThreadedWSGIServer(("127.0.0.1", 0), QuietHandler, allow_reuse_address=False)
    server.set_app(WSGIHandler())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_server_keeps_the_openapi_contract(contract_key, live_server_url, tmp_path):
    schemathesis = Path(sys.executable).with_name("st")
    command = [
        str(schemathesis), "--config-file", str(CONFIG), "run", f"{live_server_url}/api/schema/?format=json",
        "--url", live_server_url,
        "--checks", "all", "--mode", "all", "--phases", "examples,coverage,fuzzing,stateful",
        "--max-examples", str(MAX_EXAMPLES), "--max-time", str(TIME_BUDGET_SECONDS),
        "--generation-deterministic", "--request-timeout", "30", "--workers", "1",
        "--header", f"Authorization: Bearer {contract_key}",
        "--no-color", "--output-truncate", "false", "--continue-on-failure",
    ]
    # Revoking a key is fuzzed last and on its own: found by id in GET /v1/api-keys, it would revoke the
    # key the run uses, and every operation after it would only ever see a 401.
    for scope in (["--exclude-name", REVOKE], ["--include-name", REVOKE]):
        run = subprocess.run([*command, *scope], capture_output=True, text=True, cwd=tmp_path,
                             timeout=TIME_BUDGET_SECONDS + 240, env={**os.environ, "SCHEMATHESIS_TELEMETRY": "false"})
        print(run.stdout[-3000:])  # the summary, for `pytest -s`
        assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-4000:]
