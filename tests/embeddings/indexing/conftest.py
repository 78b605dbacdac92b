"""Fixtures and helpers for the index-job tests: fake detections, submissions, a capturing publisher
(the real-worker fixtures live in test_worker_e2e.py)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from django.utils import timezone

from audit.services import Actor
from embeddings.image_sources import ImageSource
from embeddings.indexing import completion, dispatch
from embeddings.indexing import services as job_services
from embeddings.models import IndexJob, IndexJobAsset
from tenants.webhooks import services as webhooks
from tests.conftest import find, installed_dimension, installed_model_id, local_server


@pytest.fixture
def published(monkeypatch) -> Published:
    """Capture what would go to the broker instead of sending it."""
    sent = Published()
    monkeypatch.setattr(dispatch, "_publish", sent)
    monkeypatch.setattr(webhooks, "enqueue", lambda *args, **kwargs: None)
    # The test's transaction never commits: run after-commit work at once, as
    # if each service call had committed (which it does outside tests).
    monkeypatch.setattr("django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn())
    return sent


@pytest.fixture
def run_commit_hooks(django_capture_on_commit_callbacks):
    """Run on_commit callbacks (dispatch, publish) as if each block had committed."""

    def run(fn, *args, **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return fn(*args, **kwargs)

    return run


@pytest.fixture
def images(settings):
    """A local HTTP server for image URLs (and webhook receivers), reachable past the SSRF guard."""
    with local_server(settings) as server:
        yield server


# The installed pack's id: a collection holds one model's faces, and index jobs
# are checked against the installed pack, as the workers would have made them.
MODEL = installed_model_id()
DIM = installed_dimension()
ACTOR = Actor(type="api_key", id="tests", name="tests", roles=("indexer",))


@dataclass
class FakeFace:
    """What the engine hands over: a box, a score, a unit embedding."""

    embedding: np.ndarray = field(repr=False)
    bbox: tuple = (10.0, 20.0, 110.0, 140.0)
    det_score: float = 0.9


@dataclass
class FakeLeftOut:
    bbox: tuple = (1.0, 2.0, 9.0, 10.0)
    det_score: float = 0.4
    size: float = 8.0
    reason: str = "too_small"


def fake_faces(n: int, seed: int = 0) -> list[FakeFace]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return [FakeFace(v / np.linalg.norm(v)) for v in x]


def url_spec(asset_id: str, url: str = "https://images.example/a.jpg", subject_id=None) -> job_services.AssetSpec:
    return job_services.AssetSpec(asset_id=asset_id, source=ImageSource(url=url), subject_id=subject_id)


def submit(tenant, specs, *, key: str | None = None, fingerprint: str = "fp", **kwargs) -> IndexJob:
    return job_services.submit_index_job(
        tenant_id=tenant.id, assets=specs, options=job_services.JobOptions(), actor=ACTOR,
        fingerprint=fingerprint, idempotency_key=key, **kwargs).job


def complete(claim, faces=None, left_out=()) -> str:
    return completion.complete_asset(claim=claim, faces=faces if faces is not None else fake_faces(1),
                                     left_out=list(left_out), model_id=MODEL, timings={"fetch_ms": 1.0})


def rows(job) -> list[IndexJobAsset]:
    return find(IndexJobAsset, job_id=job.id)


def refreshed(job) -> IndexJob:
    return find(IndexJob, id=job.id)[0]


class Published(list):
    """Stands in for the broker: (tenant_id, job_asset_id, countdown) per asset in publish order.

    `messages` keeps the messages themselves: (tenant_id, [job_asset_id, ...], countdown).
    """

    def __init__(self):
        super().__init__()
        self.messages: list[tuple[str, list[str], float | None]] = []

    def __call__(self, tenant_id, job_asset_ids, countdown=None):
        ids = [str(i) for i in job_asset_ids]
        self.messages.append((str(tenant_id), ids, countdown))
        self.extend((str(tenant_id), i, countdown) for i in ids)

    def clear(self) -> None:
        super().clear()
        self.messages.clear()

    def ids(self) -> list[str]:
        return [job_asset_id for _, job_asset_id, _ in self]


def now():
    return timezone.now()
