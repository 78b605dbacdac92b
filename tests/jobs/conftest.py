"""Fixtures for the job tests (the real-worker fixtures live in test_worker_e2e.py)."""

from __future__ import annotations

import pytest

from jobs.helpers import Published
from jobs.servers import local_server


@pytest.fixture
def published(monkeypatch) -> Published:
    """Capture what would go to the broker instead of sending it."""
    from embeddings.indexing import services as job_services
    from tenants.webhooks import services as webhooks

    sent = Published()
    monkeypatch.setattr(job_services, "_publish", sent)
    monkeypatch.setattr(webhooks, "_enqueue", lambda *args, **kwargs: None)
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
