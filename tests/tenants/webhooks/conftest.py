"""Fixtures for the webhook tests: a local receiver that checks signatures with standardwebhooks."""

from __future__ import annotations

import pytest

from tests.conftest import local_server


@pytest.fixture
def receiver(settings):
    with local_server(settings) as server:
        yield server


@pytest.fixture
def enqueued(monkeypatch) -> list:
    """Capture webhook task messages instead of sending them to the broker."""
    from tenants.webhooks import services as webhooks

    sent: list = []
    monkeypatch.setattr(webhooks, "enqueue", lambda tenant_id, delivery_id, countdown=None:
                        sent.append((str(tenant_id), str(delivery_id), countdown)))
    monkeypatch.setattr("django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn())
    return sent
