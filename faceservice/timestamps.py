"""The one text form of a datetime that the service emits: ISO 8601 in UTC, ending in `Z`.

It is DRF's default (`DateTimeField` with `DATETIME_FORMAT = "iso-8601"` and
`TIME_ZONE = "UTC"`), so the same instant reads the same in an API answer and
in a webhook payload, which is built without DRF.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_utc(value: datetime) -> str:
    """`2025-01-31T12:00:00.123456Z`: as DRF renders it (microseconds kept, none when zero)."""
    text = value.astimezone(UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
