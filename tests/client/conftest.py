"""The client and the CLI against the real service: `manage.py runserver` processes on the
committed test database, and a real Celery worker for index jobs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.conftest import FACES_DIR, PROJECT_DIR

KNOWN = FACES_DIR / "known-people"
GROUPS = FACES_DIR / "group-photos"

if not KNOWN.is_dir():
    pytest.skip(f"{KNOWN} is missing", allow_module_level=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def running_server(log_dir, **env: str) -> Iterator[str]:
    """`manage.py runserver --noreload` on a free port, with the test database's environment (plus env)."""
    port = free_port()
    log = log_dir / f"runserver-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, str(PROJECT_DIR / "manage.py"), "runserver", "--noreload", "--skip-checks",
             f"127.0.0.1:{port}"], env={**os.environ, **env}, cwd=PROJECT_DIR, stdout=output, stderr=output,
            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"{url}/healthz", timeout=2)
                break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"runserver did not start: {log.read_text()[-2000:]}") from None
                time.sleep(0.3)
        yield url
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


@contextmanager
def running_worker(log_dir, **env: str) -> Iterator:
    """A real Celery worker (index jobs, webhook deliveries, queued deletions) with the test environment (plus env)."""
    from tests.embeddings.indexing.test_worker_e2e import Worker

    started = Worker(log_dir, {**os.environ, "FACE_MODEL_THREADS": "1", "PYTHONPATH": str(PROJECT_DIR), **env},
                     concurrency=2).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    with running_server(tmp_path_factory.mktemp("server")) as url:
        yield url


@pytest.fixture
def new_key(committed_db) -> Callable[..., str]:
    """An API key of a new committed tenant (or of the given one), holding the roles."""
    from audit.services import Actor
    from tenants import services

    def make(roles=("admin", "indexer", "searcher", "auditor"), tenant_id=None) -> str:
        if tenant_id is None:
            tenant_id = services.create_tenant(name=f"client-{uuid.uuid4().hex[:10]}",
                                               actor=Actor.operator("tests")).id
        issued = services.create_api_key(tenant_id=tenant_id, name="client tests", roles=list(roles),
                                         actor=Actor.operator("tests"))
        return issued.plaintext

    return make
