"""Shared fixtures and helpers. The suite runs against real servers started by `./dev test`;
tests marked `pure` also run without any (`./dev test --fast`).

Django imports stay inside the fixtures and helpers: this module is loaded before
any test, and the pure tests must not depend on the database or the models.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parents[1]  # the repository root
SHARED_DIR = PROJECT_DIR.parent / "shared"
FACES_DIR = SHARED_DIR / "faces"
MODELS_DIR = SHARED_DIR / "models"

# What makes a test need the database; a `pure` test may use none of these.
DATABASE_FIXTURES = {"db", "transactional_db", "django_db_reset_sequences", "django_db_serialized_rollback",
                     "committed_db", "django_db_setup", "live_server"}


def pytest_collection_modifyitems(items) -> None:
    """Refuse a `pure` test that asks for the database: the fast tier runs without one."""
    for item in items:
        if item.get_closest_marker("pure") is None:
            continue
        needs = DATABASE_FIXTURES.intersection(getattr(item, "fixturenames", ()))
        if needs or item.get_closest_marker("django_db"):
            raise pytest.UsageError(f"{item.nodeid} is marked pure but uses the database ({sorted(needs)})")



class FakeClock:
    """A clock the test moves by hand (`clock.now += 5`), for caches that take a `clock`/`timer`."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

@pytest.fixture(autouse=True)
def _fresh_search_galleries(request):
    """Each test starts with no in-memory gallery: a rolled-back test's faces must not linger.

    Pure tests never load a gallery (they have no database), so they skip the import.
    """
    if request.node.get_closest_marker("pure") is None:
        from embeddings.search.gallery import clear_galleries

        clear_galleries()
    yield


@pytest.fixture(scope="session")
def django_db_setup(django_db_blocker):
    """Migrate the throw-away database that `./dev test` started.

    pytest-django would create a second database; ours is already fresh for
    each run and its role may not create databases (it is deliberately weak).
    """
    if not os.environ.get("FACESERVICE_TESTING"):
        pytest.exit("Run the suite with `./dev test` (it starts throw-away servers).", returncode=2)
    from django.core.management import call_command

    with django_db_blocker.unblock():
        call_command("migrate", "--noinput", verbosity=0)


@pytest.fixture
def committed_db(django_db_setup, django_db_blocker):
    """Database access without the per-test transaction, for tests whose data
    another process (a Celery worker, a second connection) must see.
    Tests using it create their own tenants, so no flush is needed."""
    with django_db_blocker.unblock():
        yield


def rows_mentioning(needles: list[str]) -> dict[str, int]:
    """Rows of every table holding any needle, read as the PostgreSQL superuser (no row-level security).

    The audit log keeps what happened (ids, never face data) by design and is
    left out; docs/SECURITY.md lists what remains. Needs committed data (committed_db).
    """
    import psycopg

    found = {}
    with psycopg.connect(os.environ["DATABASE_SUPERUSER_URL"], autocommit=True) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename NOT LIKE 'audit\\_%'")]
        for table in tables:
            for needle in needles:
                n = conn.execute(f'SELECT count(*) FROM "{table}" t WHERE t::text LIKE %s',  # noqa: S608
                                 [f"%{needle}%"]).fetchone()[0]
                if n:
                    found[f"{table}: {needle}"] = n
    return found


def installed_dimension() -> int:
    """The installed pack's embedding size (fake faces of its model must have it: the model's HNSW index
    casts to it); 128 where no pack is configured (the pure tier)."""
    from embeddings.engine import ModelsUnavailable
    from embeddings.face_engine import face_engine

    try:
        return face_engine().dimension
    except ModelsUnavailable:
        return 128


def installed_model_id() -> str:
    """The installed pack's model id; a stand-in where no pack is configured (the pure tier)."""
    from embeddings.engine import ModelsUnavailable
    from embeddings.face_engine import current_model_id

    try:
        return current_model_id()
    except ModelsUnavailable:
        return "test-model:0001"


def unique_name(prefix: str = "tenant") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def make_tenant(db) -> Callable:
    from audit.services import Actor
    from tenants import services

    def make(name: str | None = None, **kwargs):
        return services.create_tenant(name=name or unique_name(), actor=Actor.operator("tests"), **kwargs)

    return make


@pytest.fixture
def make_key(db) -> Callable:
    from audit.services import Actor
    from tenants import services

    def make(tenant, roles=("admin",), **kwargs) -> str:
        issued = services.create_api_key(tenant_id=tenant.id, name=kwargs.pop("name", "test key"),
                                         roles=list(roles), actor=Actor.operator("tests"), **kwargs)
        return issued.plaintext

    return make


@pytest.fixture
def client_for(make_key) -> Callable:
    """An API client authenticated with a new key of the tenant holding the roles."""
    from rest_framework.test import APIClient

    def make(tenant, roles=("admin",)) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(tenant, roles)}")
        return client

    return make


@pytest.fixture
def tenant(make_tenant):
    return make_tenant()


@pytest.fixture
def other_tenant(make_tenant):
    return make_tenant()


@pytest.fixture
def no_new_temp_files(tmp_path, monkeypatch):
    """Point every temp-file API at a private folder and fail if anything lands there.

    A private folder rather than /tmp itself: other suites share /tmp concurrently.
    """
    folder = tmp_path / "private-tmp"
    folder.mkdir()
    for name in ("TMPDIR", "TEMP", "TMP"):
        monkeypatch.setenv(name, str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert list(folder.iterdir()) == []


def assert_json_error(response, status: int, code: str) -> dict:
    """The response is our one JSON error shape, with this status and code."""
    content = response.content.decode(errors="replace")
    assert response.status_code == status, f"expected {status}, got {response.status_code}: {content[:500]}"
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    assert "<html" not in content.lower() and "Traceback" not in content, content[:500]
    error = response.json()["error"]
    assert error["code"] == code, error
    assert isinstance(error["message"], str) and error["message"], error
    assert error["request_id"] and error["request_id"] == response["X-Request-ID"], (error, response.headers)
    return error


# Tests read and poke rows as the operator would: past row-level security.
def find(model, order_by=None, **filters) -> list:
    from embeddings.models import IndexJobAsset
    from faceservice.tenancy import platform_scope

    with platform_scope():
        rows = model.objects.filter(**filters)
        if order_by or model is IndexJobAsset:
            rows = rows.order_by(order_by or "position")
        return list(rows)


def count(model, **filters) -> int:
    from faceservice.tenancy import platform_scope

    with platform_scope():
        return model.objects.filter(**filters).count()


def update(model, filters: dict, **values) -> int:
    from faceservice.tenancy import platform_scope

    with platform_scope():
        return model.objects.filter(**filters).update(**values)


# Small local HTTP servers for the tests: an image host and a webhook receiver.
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
