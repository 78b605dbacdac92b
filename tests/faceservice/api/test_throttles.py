"""Rate limits per API key and per client IP, counted in the real Redis."""

from __future__ import annotations

import random

import pytest
from django.conf import settings
from django.test import override_settings
from rest_framework.test import APIClient

from tests.conftest import assert_json_error

LIMIT = 3


def random_ip() -> str:
    """An address of its own (RFC 2544 benchmarking range), so throttle counters never collide."""
    return f"198.18.{random.randint(0, 255)}.{random.randint(1, 254)}"


def _rates(*, per_key: str, per_ip: str) -> dict:
    # The whole REST_FRAMEWORK dict: a partial one would reset our exception handler too.
    return {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {"api_key": per_key, "client_ip": per_ip}}


def _get(client: APIClient, ip: str):
    return client.get("/v1/tenant", REMOTE_ADDR=ip)


def _use_up(client: APIClient, ip: str) -> None:
    for _ in range(LIMIT):
        assert _get(client, ip).status_code == 200


def _assert_throttled(response) -> None:
    assert_json_error(response, 429, "rate_limited")
    assert 1 <= int(response["Retry-After"]) <= 60


@pytest.fixture
def low_key_rate():
    with override_settings(REST_FRAMEWORK=_rates(per_key=f"{LIMIT}/min", per_ip="100000/min")):
        yield


@pytest.fixture
def low_ip_rate():
    with override_settings(REST_FRAMEWORK=_rates(per_key="100000/min", per_ip=f"{LIMIT}/min")):
        yield


def test_key_over_its_rate_gets_429_with_retry_after(low_key_rate, tenant, client_for):
    client, ip = client_for(tenant, roles=("searcher",)), random_ip()
    _use_up(client, ip)
    _assert_throttled(_get(client, ip))


def test_each_key_has_its_own_count(low_key_rate, tenant, client_for):
    busy, other, ip = client_for(tenant), client_for(tenant), random_ip()
    _use_up(busy, ip)
    _assert_throttled(_get(busy, ip))
    assert _get(other, ip).status_code == 200  # same tenant, same address, another key


def test_address_over_its_rate_gets_429_whatever_the_key(low_ip_rate, tenant, client_for):
    first, second, ip = client_for(tenant), client_for(tenant), random_ip()
    _use_up(first, ip)
    _assert_throttled(_get(second, ip))


def test_each_address_has_its_own_count(low_ip_rate, tenant, client_for):
    client, busy_ip = client_for(tenant), random_ip()
    _use_up(client, busy_ip)
    _assert_throttled(_get(client, busy_ip))
    assert _get(client, random_ip()).status_code == 200


def test_requests_with_bad_keys_count_against_the_address(low_ip_rate, db):
    client, ip = APIClient(), random_ip()
    client.credentials(HTTP_AUTHORIZATION="Bearer fsk_000000000000_wrong")
    statuses = [_get(client, ip).status_code for _ in range(LIMIT + 1)]
    assert statuses[-1] == 429, statuses


def test_refused_requests_count_against_the_key(low_key_rate, tenant, client_for):
    """A role refusal is audited: a key must not be able to write those without limit."""
    client, ip = client_for(tenant, roles=("comparer",)), random_ip()
    statuses = [client.post("/v1/search", {}, format="json", REMOTE_ADDR=ip).status_code for _ in range(LIMIT + 1)]
    assert statuses == [403] * LIMIT + [429]


def test_a_full_window_records_the_request_in_none(low_key_rate, tenant, client_for):
    """Key and address are counted in one call: a request refused by one limit uses up no other."""
    from faceservice.api.throttles import _sliding_window

    client, ip = client_for(tenant), random_ip()
    _use_up(client, ip)
    for _ in range(5):
        _assert_throttled(_get(client, ip))
    redis = _sliding_window().registered_client
    assert redis.zcard(f"fs:throttle:client_ip:{ip}") == LIMIT
