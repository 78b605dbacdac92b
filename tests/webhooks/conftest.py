"""Fixtures for the webhook tests: a local receiver that checks signatures with standardwebhooks."""

from __future__ import annotations

import pytest

from tests.jobs.servers import LocalServer


@pytest.fixture
def receiver(settings):
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    server = LocalServer().start()
    yield server
    server.stop()


@pytest.fixture
def enqueued(monkeypatch) -> list:
    """Capture webhook task messages instead of sending them to the broker."""
    from tenants import webhooks

    sent: list = []
    monkeypatch.setattr(webhooks, "_enqueue", lambda tenant_id, delivery_id, countdown=None:
                        sent.append((str(tenant_id), str(delivery_id), countdown)))
    monkeypatch.setattr("django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn())
    return sent
