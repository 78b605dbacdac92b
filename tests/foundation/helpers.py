"""Assertions shared by the foundation tests."""

from __future__ import annotations

import random


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


def random_ip() -> str:
    """An address of its own (RFC 2544 benchmarking range), so throttle counters never collide."""
    return f"198.18.{random.randint(0, 255)}.{random.randint(1, 254)}"
