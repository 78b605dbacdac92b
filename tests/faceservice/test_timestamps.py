"""One text form for every datetime the API or a webhook emits (issue #14)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from rest_framework.fields import DateTimeField

from faceservice.timestamps import iso_utc

pytestmark = pytest.mark.pure


@pytest.mark.parametrize("value", [
    datetime(2025, 1, 31, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC),
    datetime(2025, 1, 31, 14, 0, 0, 5, tzinfo=timezone(timedelta(hours=2))),
])
def test_the_same_text_as_drf(value):
    assert iso_utc(value) == DateTimeField().to_representation(value)
    assert iso_utc(value).endswith("Z")


def test_webhook_bodies_use_it():
    from tenants.webhooks.services import event_body

    now = datetime(2025, 1, 31, 12, 0, 0, 250000, tzinfo=UTC)
    body = event_body(event_type="faces.deleted", payload={"deleted_at": now}, now=now)
    assert body["timestamp"] == body["data"]["deleted_at"] == "2025-01-31T12:00:00.250000Z"
