"""The real service for the search benchmarks: throw-away servers, a tenant, a web process.

    with ServiceStack(run_dir) as stack:      # PostgreSQL + Valkey, migrate, tenant + key, gunicorn
        stack.search(image_bytes, faces="largest")   # POST /v1/search over HTTP
        stack.enrol(asset_id=..., subject_id=..., faces=[...])  # embeddings.store.services.replace_asset_faces

The benchmark process itself is set up as a Django process on the same
database and the same environment as the web server, so that it can create the
tenant, index faces with `replace_asset_faces` (the store's own write path:
same encryption, same projection, same rows as an index job writes) and load
the face engine with exactly the server's configuration (`engine_config()`).
Every search goes to the web server, a separate gunicorn process, over HTTP.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
SHARED_DIR = PROJECT_DIR.parent / "shared"
LFW_DIR = SHARED_DIR / "faces" / "lfw-devtrain"
MODEL_ROOT = SHARED_DIR / "models"
MODEL_PACK = "scrfd500m-mobilefacenet"

if str(PROJECT_DIR) not in sys.path:
    sys.path.insert(0, str(PROJECT_DIR))


def log(message: str) -> None:
    print(f"--> {message}", file=sys.stderr, flush=True)


@dataclass(frozen=True)
class SimpleFace:
    """What replace_asset_faces needs of a face (embeddings.store.services.DetectedFace)."""

    bbox: tuple[float, float, float, float]
    det_score: float
    embedding: object  # np.ndarray


class ServiceStack:
    """Start everything, hand out an HTTP client to the web server, stop everything."""

    def __init__(self, run_dir: Path | None = None, *, web_workers: int = 1,
                 extra_env: dict[str, str] | None = None, web_log: bool = True) -> None:
        self._own_dir = run_dir is None
        self.run_dir = Path(run_dir or tempfile.mkdtemp(prefix="faceservice-bench-"))
        self.web_workers = web_workers
        self.extra_env = extra_env or {}
        self.web_log = web_log
        self.services = None
        self.web = None
        self.env: dict[str, str] = {}
        self.base_url = ""
        self.api_key = ""
        self.tenant_id = None
        self._client = None
        self._connection: http.client.HTTPConnection | None = None
        self.server_errors: list[str] = []
        self.workers: list = []

    # Life cycle -----------------------------------------------------------------
    def start(self) -> ServiceStack:
        from faceservice.devservices import Background, Services, free_port

        os.environ.setdefault("FACE_MODEL_ROOT", str(MODEL_ROOT))
        os.environ.setdefault("FACE_MODEL_PACK", MODEL_PACK)
        # for_tests=False: no moto (the local KMS is used). Servers already named by
        # DATABASE_URL / REDIS_URL (e.g. under `./dev test`) are used as they are.
        self.services = Services(self.run_dir, for_tests=False)
        try:
            env = self.services.start()
            env.setdefault("DJANGO_SETTINGS_MODULE", "faceservice.settings")
            # Thousands of requests from one key and one address in a few minutes.
            env.setdefault("RATE_LIMIT_PER_IP", "1000000/min")
            env.setdefault("RATE_LIMIT_PER_KEY", "1000000/min")
            env.update(self.extra_env)
            self.env = env
            # This process becomes a Django process on the same servers and settings.
            os.environ.update(env)
            import django

            django.setup()
            import logging

            logging.getLogger("httpx").setLevel(logging.WARNING)  # one INFO line per request otherwise
            from django.core.management import call_command

            log("migrating")
            call_command("migrate", "--noinput", verbosity=0)
            self.new_tenant()
            port = free_port()
            bin_dir = Path(sys.executable).parent
            # The production configuration (gthread, keep-alive), one process unless told.
            args = [str(bin_dir / "gunicorn"), "-c", str(PROJECT_DIR / "deploy" / "gunicorn.conf.py"),
                    "faceservice.wsgi", "--chdir", str(PROJECT_DIR),
                    "--bind", f"127.0.0.1:{port}", "--workers", str(self.web_workers),
                    "--timeout", "300", "--graceful-timeout", "5"]
            self.web = Background("web (gunicorn)", args, port=port, env=env,
                                  log_file=self.run_dir / "web.log" if self.web_log else None)
            self.web.start()
            self.base_url = f"http://127.0.0.1:{port}"
            self._check_ready()
            return self
        except BaseException:
            self.stop()
            raise

    def start_worker(self, concurrency: int = 1) -> None:
        """A Celery worker process (all queues) for the index-job API."""
        from faceservice.devservices import Background

        bin_dir = Path(sys.executable).parent
        args = [str(bin_dir / "celery"), "--workdir", str(PROJECT_DIR), "-A", "faceservice", "worker",
                "--loglevel", "WARNING", "--concurrency", str(concurrency), "-Q", "celery,index,webhooks",
                "--without-gossip", "--without-mingle"]
        worker = Background("worker (celery)", args, env=self.env, log_file=self.run_dir / "worker.log")
        worker.start()
        self.workers.append(worker)

    def stop(self) -> None:
        for worker in reversed(self.workers):
            worker.stop()
        self.workers = []
        if self._client is not None:
            self._client.close()
            self._client = None
        self._close_connection()
        if self.web is not None:
            self.web.stop()
            self.web = None
        from django.conf import settings

        if settings.configured:
            from django.db import connections

            connections.close_all()
        if self.services is not None:
            self.services.stop()
            self.services = None
        if self._own_dir:
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def __enter__(self) -> ServiceStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def new_tenant(self) -> None:
        """A fresh tenant (no faces) and an API key of it; later calls act for it."""
        from audit.services import Actor
        from tenants import services

        actor = Actor.operator("bench")
        tenant = services.create_tenant(name=f"bench-{uuid.uuid4().hex[:12]}", actor=actor)
        issued = services.create_api_key(tenant_id=tenant.id, name="bench key",
                                         roles=["admin", "searcher"], actor=actor)
        self.tenant_id, self.api_key = tenant.id, issued.plaintext
        if self._client is not None:
            self._client.close()
            self._client = None

    def default_collection_id(self) -> uuid.UUID:
        """The id of the tenant's default collection (made if missing): where enrol() writes and
        where searches that name no collection look."""
        from embeddings.store.collections import collection_named
        from faceservice.tenancy import tenant_context

        with tenant_context(self.tenant_id):
            return collection_named(self.tenant_id).id

    # The engine, the same as the web server's ---------------------------------------
    @staticmethod
    def engine():
        """The bench process's own engine, built from the same settings as the server's."""
        from embeddings.face_engine import face_engine

        return face_engine()

    @staticmethod
    def engine_config():
        from embeddings.face_engine import engine_config

        return engine_config()

    @staticmethod
    def ensure_vector_index(model_id: str, dimension: int) -> bool:
        from embeddings.store.vector_index import ensure_vector_index

        return ensure_vector_index(model_id, dimension)

    # Writes: the store's own indexing path --------------------------------------------
    def enrol(self, *, asset_id: str, faces: list, model_id: str, subject_id: str | None = None) -> list:
        """Index an asset's faces with embeddings.store.services.replace_asset_faces (into the tenant's
        default collection); the new face ids."""
        from django.utils import timezone

        from audit.services import Actor
        from embeddings.store.services import replace_asset_faces

        result = replace_asset_faces(tenant_id=self.tenant_id, asset_id=asset_id, faces=faces,
                                     model_id=model_id, subject_id=subject_id, submitted_at=timezone.now(),
                                     actor=Actor.system("bench"))
        return result.face_ids

    def _check_ready(self) -> None:
        """Fail fast (with the server's log) if the web process cannot serve: loads the URLconf now."""
        import httpx

        deadline = time.monotonic() + 180
        while True:  # the worker may still be booting (it loads the face models first)
            try:
                response = httpx.get(f"{self.base_url}/readyz", timeout=120.0)
                break
            except httpx.TransportError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"/readyz: {exc}\nweb server log:\n{self.web_log_tail()}") from exc
                time.sleep(1)
        if response.status_code != 200:
            raise RuntimeError(f"/readyz answered {response.status_code}: {response.text[:300]}\n"
                               f"web server log (last lines):\n{self.web_log_tail()}")

    def web_log_tail(self, lines: int = 40) -> str:
        path = self.run_dir / "web.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def enrol_via_jobs(self, assets: list[tuple[str, str | None, bytes]], *, options: dict | None = None,
                       batch: int = 100, timeout: float = 7200.0) -> dict[str, dict]:
        """Index (asset_id, subject_id, image bytes) through POST /v1/index-jobs (inline images) and a
        Celery worker (start_worker first); {asset_id: per-asset result (state, faces, ...)}."""
        import base64

        results: dict[str, dict] = {}
        for start in range(0, len(assets), batch):
            chunk = assets[start:start + batch]
            body = {"assets": [{"asset_id": asset_id, "subject_id": subject_id,
                                "image": {"base64": base64.b64encode(data).decode()}}
                               for asset_id, subject_id, data in chunk],
                    "options": options or {}}
            response = self.client.post("/v1/index-jobs", json=body)
            if response.status_code != 202:
                raise RuntimeError(f"index-jobs answered {response.status_code}: {response.text[:300]}")
            job = response.json()
            deadline = time.monotonic() + timeout
            while job["state"] not in ("succeeded", "partially_failed", "failed", "cancelled"):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"job {job['id']} did not finish: {job}")
                time.sleep(0.5)
                job = self.client.get(job["status_url"]).json()
            url = f"{job['results_url']}?limit=1000"
            while url:
                page = self.client.get(url).json()
                results.update({row["asset_id"]: row for row in page["results"]})
                url = page.get("next")
            log(f"index jobs: {min(start + batch, len(assets))}/{len(assets)} assets ({job['state']})")
        return results

    # Reads: HTTP ---------------------------------------------------------------------
    @property
    def client(self):
        import httpx

        if self._client is None:
            self._client = httpx.Client(base_url=self.base_url, timeout=300.0,
                                        headers={"Authorization": f"Bearer {self.api_key}"})
        return self._client

    def search(self, image: bytes, **options) -> tuple[dict, float]:
        """POST /v1/search with a multipart upload: (response body, wall-clock ms).

        The timed client is the standard library's http.client on a kept-alive
        connection, with the body encoded before the clock starts: httpx spent
        ~1 ms of its own per request (docs/BENCHMARKS.md), which is this
        client's cost, not the service's. The clock still covers sending the
        upload, the server's whole work, and reading the answer.

        A 5xx answer is retried at most twice (a benchmark of an hour should not
        die of one transient error); every retry is counted in `server_errors`
        and the benchmarks report it. Other errors raise at once.
        """
        body, content_type = multipart_body(image, {key: str(value) for key, value in options.items()})
        headers = {"Authorization": f"Bearer {self.api_key}", "Content-Type": content_type}
        for attempt in range(3):
            started = time.perf_counter()
            status, response_headers, data = self._post("/v1/search", body, headers)
            elapsed = (time.perf_counter() - started) * 1000
            if status < 500 or attempt == 2:
                break
            self.server_errors.append(f"{status}: {self.web_log_tail(5)[-500:]}")
            log(f"search answered {status}; retrying")
            time.sleep(2)
        if status != 200:
            raise RuntimeError(f"search answered {status}: {data[:300]!r}\n"
                               f"web server log (last lines):\n{self.web_log_tail()}")
        answer = json.loads(data)
        # The server's own time (Server-Timing "app"): the rest of `elapsed` is HTTP and this client.
        app = response_headers.get("server-timing", "").partition("app;dur=")[2]
        answer["timings_ms"]["app"] = float(app) if app else 0.0
        return answer, elapsed

    def _post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """One request on the kept-alive connection; again on a new one if the server had closed it."""
        try:
            return self._exchange(path, body, headers)
        except (http.client.RemoteDisconnected, ConnectionError):
            self._close_connection()
            return self._exchange(path, body, headers)

    def _exchange(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        if self._connection is None:
            host, port = self.base_url.removeprefix("http://").rsplit(":", 1)
            self._connection = http.client.HTTPConnection(host, int(port), timeout=300)
        self._connection.request("POST", path, body=body, headers=headers)
        response = self._connection.getresponse()
        data = response.read()
        if response.will_close:
            self._close_connection()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, data

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def multipart_body(image: bytes, fields: dict[str, str]) -> tuple[bytes, str]:
    """A multipart/form-data body with the form fields and the image as `image`; and its content type."""
    boundary = uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="probe.jpg"\r\n'
                 f"Content-Type: image/jpeg\r\n\r\n".encode() + image + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def lfw_people(root: Path = LFW_DIR) -> dict[str, list[Path]]:
    """{person: [photo paths, in file order]} of an LFW-style folder tree."""
    people = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        photos = sorted(folder.glob("*.jpg"))
        if photos:
            people[folder.name] = photos
    return people


def percentile(values, q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values, dtype=np.float64), q)) if len(values) else float("nan")
