"""The connection health check (faceservice/postgresql): no round trip when healthy, caught when not."""

from __future__ import annotations

import time

import pytest
from django.db import connection, connections


@pytest.fixture
def own_connection(db):
    """A second connection of the service's backend, apart from the test's transaction."""
    wrapper = connections.create_connection("default")
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def _last_query_of(pid: int) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0]


def test_a_healthy_connection_is_checked_without_a_statement(own_connection):
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid(), 'marker-before-the-check'")
        pid = cursor.fetchone()[0]
    for _ in range(3):
        assert own_connection.is_usable()
    assert "marker-before-the-check" in _last_query_of(pid)  # no SELECT 1 reached the server


def test_a_connection_the_server_closed_is_found_unusable_and_replaced(own_connection):
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
        assert cursor.fetchone()[0] is True
    deadline = time.monotonic() + 10
    while own_connection.is_usable():  # the server's goodbye takes a moment to arrive
        assert time.monotonic() < deadline, "a terminated connection still looked usable"
        time.sleep(0.05)
    # What Django does before a request's first query with CONN_HEALTH_CHECKS on.
    own_connection.health_check_done = False
    own_connection.close_if_health_check_failed()
    with own_connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid
