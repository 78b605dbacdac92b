"""Durable work: the one lease / fencing / backoff mechanism of index assets and webhook deliveries.

PostgreSQL holds the state of every piece of work; a Celery message only says
"look at row X". A row moves like this:

    waiting --claim--> working --done--> finished
       ^                  |  \\--transient failure: waiting again, due after retry_delay()
       |                  \\--lease expired (worker died): the sweeper hands it out again
       +------------------+

- **Claim**: one transaction locks the row, checks `claimable` (waiting and
  due, or working under an expired lease), moves it to working, adds 1 to
  `attempts` and sets `lease_expires_at` (`ClaimTimes`). A duplicate or late
  message finds nothing claimable and does nothing.
- **Fencing**: `attempts` is the token the claim hands out. The worker's result
  counts only while the row is still `held` with that token: a worker whose
  lease was taken over (or whose work was cancelled) cannot commit.
- **Retry**: a transient failure puts the row back to waiting, due after
  `retry_delay` (exponential, capped, with jitter so that failures of many
  rows at once do not come back at once).
- **Sweeper**: rows whose lease `lease_expired` are handed out again (or given
  up after too many attempts), so a SIGKILLed worker loses nothing.

The claims of index assets run as raw SQL (the workers' hot path, one
statement per batch); they spell out the same rules with these values.
Why Celery plus this module rather than a PostgreSQL job queue such as
procrastinate: docs/JOBS.md, "Durable work".
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from uuid import UUID

from django.db import connection
from django.db.models import Q
from django.utils import timezone

from faceservice.tenancy import set_tenant_for_transaction, tenant_context, tenant_transaction

# The clocks of web servers, workers and the database differ a little: work due
# this close to now counts as due, so a countdown message that arrives a moment
# "early" by the worker's clock still finds its row claimable.
CLOCK_SLACK = timedelta(seconds=2)


# --- Backoff --------------------------------------------------------------------------

@dataclass(frozen=True)
class Backoff:
    """Exponential backoff: base · factor^(n-1), capped, times a uniform draw from `jitter`."""

    base_seconds: float
    factor: float
    max_seconds: float
    jitter: tuple[float, float]  # (low, high) multipliers of the nominal delay


def retry_delay(failed_attempts: int, backoff: Backoff, *, jitter: bool = True) -> float:
    """Seconds to wait after the n-th failed attempt (jitter=False: the nominal delay)."""
    nominal = min(float(backoff.base_seconds * backoff.factor ** (failed_attempts - 1)),
                  float(backoff.max_seconds))
    return nominal * random.uniform(*backoff.jitter) if jitter else nominal


# --- Claims, leases, fencing -------------------------------------------------------------

@dataclass(frozen=True)
class ClaimTimes:
    """The instants one claim compares and writes."""

    now: datetime
    due: datetime  # waiting work due by then is claimable (CLOCK_SLACK)
    lease_expires_at: datetime  # the claim's lease, written on the row


def claim_times(lease_seconds: float, now: datetime | None = None) -> ClaimTimes:
    now = now or timezone.now()
    return ClaimTimes(now=now, due=now + CLOCK_SLACK, lease_expires_at=now + timedelta(seconds=lease_seconds))


def lease_expired(*, working: str, now: datetime) -> Q:
    """Rows a worker held whose lease ran out: the worker died or stalled (the sweeper's step)."""
    return Q(state=working, lease_expires_at__lt=now)


def claimable(*, waiting: str, working: str, times: ClaimTimes) -> Q:
    """Waiting and due, or held under an expired lease."""
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=times.due)
    return (Q(state=waiting) & due) | lease_expired(working=working, now=times.now)


def held(*, working: str, token: int) -> Q:
    """The row is still held by the claim that handed out `token` (its attempts): the fencing check."""
    return Q(state=working, attempts=token)


# --- Transactions of the workers' bookkeeping ----------------------------------------------

@contextmanager
def bound_transaction(tenant_id: UUID | str, *, synchronous_commit: bool = True) -> Iterator[None]:
    """A transaction bound to the tenant (row-level security), cheaply.

    Outermost (a worker's task): BEGIN + one set_config in a
    tenant_transaction, so tenant scopes of this tenant inside it cost
    nothing, and the binding ends with the transaction. Nested:
    tenant_context, which restores the outer binding. This is the workers'
    hot path, where round trips add up.

    synchronous_commit=False: asynchronous commit (no wait for the WAL flush)
    for pure bookkeeping that the sweeper rebuilds if a database crash loses
    it — a claim (the work is handed out again, its lease never taken) or a
    dispatch (the assets are pending again). Never for writing results.
    """
    if connection.in_atomic_block:
        with tenant_context(tenant_id):
            yield
        return
    with tenant_transaction():
        set_tenant_for_transaction(tenant_id)
        if not synchronous_commit:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config('synchronous_commit', 'off', true)")
        yield


def advisory_lock(name: str) -> None:
    """Serialise on `name` until the transaction ends (commit or rollback): never leaked to a pooled connection."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name])
