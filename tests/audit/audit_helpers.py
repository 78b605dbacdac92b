"""Helpers for the audit tests (imported by name: conftest modules are not unique)."""

from __future__ import annotations

import os
from contextlib import contextmanager

import psycopg


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
