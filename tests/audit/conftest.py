"""Fixtures and helpers for the audit tests: events on throw-away chains, staff auditors, the superuser."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from contextlib import contextmanager

import psycopg
import pytest


@pytest.fixture
def write_events() -> Callable:
    """Append n events to a tenant chain (no tenant row needed: chains are by id)."""
    from audit.services import Actor, record_event
    from faceservice.tenancy import tenant_context

    def write(tenant_id=None, n: int = 5, action: str = "search", **kwargs) -> list:
        tenant_id = tenant_id or uuid.uuid4()
        events = []
        with tenant_context(tenant_id):
            for i in range(n):
                events.append(record_event(
                    tenant_id=tenant_id, actor=Actor(type="api_key", id=str(uuid.uuid4()), name="k"),
                    action=action, target={"job_id": str(uuid.uuid4())}, details={"i": i}, **kwargs))
        return events

    return write


@pytest.fixture
def make_auditor(db) -> Callable:
    from audit.console.auth import create_staff_auditor
    from audit.services import Actor

    def make(password: str = "correct horse battery staple"):  # noqa: S107 - a test password
        username = f"auditor-{uuid.uuid4().hex[:8]}"
        created = create_staff_auditor(username=username, password=password, actor=Actor.operator("tests"))
        return created.user, created.device, password

    return make


@contextmanager
def as_superuser(replica: bool = True):
    """A connection as the PostgreSQL superuser; `replica` skips user triggers (tampering)."""
    with psycopg.connect(os.environ["DATABASE_SUPERUSER_URL"], autocommit=True) as conn:
        if replica:
            conn.execute("SET session_replication_role = replica")
        yield conn


def totp_now(device) -> str:
    """The current code of a django-otp TOTP device, as an authenticator app shows it."""
    from django_otp.oath import totp

    code = totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits, drift=device.drift)
    return str(code).zfill(device.digits)
