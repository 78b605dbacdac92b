"""Retention of audit events: purge the oldest, keep every chain verifiable.

Events older than AUDIT_RETENTION_DAYS (default 2557 days, seven years) are
removed from the start of each chain. Before any row goes, a signed checkpoint
records the seq and hash of the last purged event; verification of what is
left starts from it. The database itself refuses to delete an event that no
checkpoint covers, and refuses checkpoints younger than audit_min_retention()
(365 days, fixed in the schema). The purge is recorded as an event on the
chain it cut. Face-data deletions never touch audit events: they have no
foreign keys to face data, so nothing cascades.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import Max, Min
from django.utils import timezone

from audit import signing
from audit.models import AuditChainHead, AuditEvent, AuditRetentionCheckpoint
from audit.services import Actor, record_event
from faceservice.tenancy import platform_scope

PURGE_BATCH = 10_000


@dataclass(frozen=True)
class PurgeResult:
    chain: str
    through_seq: int
    purged_events: int


def checkpoint_document(checkpoint: AuditRetentionCheckpoint) -> dict:
    return {"v": 1, "kind": "retention_checkpoint", "chain": checkpoint.chain,
            "tenant_id": str(checkpoint.tenant_id) if checkpoint.tenant_id else None,
            "seq": checkpoint.seq, "hash": checkpoint.hash, "cutoff": checkpoint.cutoff.isoformat(),
            "purged_events": checkpoint.purged_events, "created_at": checkpoint.created_at.isoformat()}


def latest_checkpoint(chain: str) -> AuditRetentionCheckpoint | None:
    return AuditRetentionCheckpoint.objects.filter(chain=chain).order_by("-seq").first()


def purge_expired_events(*, retention_days: int | None = None, now: datetime | None = None,
                         chains: list[str] | None = None) -> list[PurgeResult]:
    """Purge events past retention from every chain (or the given ones). Idempotent."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=retention_days or settings.AUDIT_RETENTION_DAYS)
    with platform_scope():
        names = chains or list(AuditChainHead.objects.values_list("chain", flat=True))
    results = []
    for chain in names:
        result = _purge_chain(chain, cutoff=cutoff, now=now)
        if result:
            results.append(result)
    return results


def _purge_chain(chain: str, *, cutoff: datetime, now: datetime) -> PurgeResult | None:
    with platform_scope():
        through = _last_purgeable_seq(chain, cutoff)
        previous = latest_checkpoint(chain)
        if through is not None and through > (previous.seq if previous else 0):
            checkpoint = _write_checkpoint(chain, through=through, cutoff=cutoff, now=now)
            record_event(tenant_id=checkpoint.tenant_id, actor=Actor.system("audit retention"),
                         action="audit.retention_purged", target={"chain": chain},
                         details={"through_seq": through, "purged_events": checkpoint.purged_events,
                                  "cutoff": cutoff.isoformat()})
            previous = checkpoint
    if previous is None:
        return None
    deleted = _delete_covered(chain, previous.seq)
    return PurgeResult(chain=chain, through_seq=previous.seq, purged_events=deleted) if deleted else None


def _last_purgeable_seq(chain: str, cutoff: datetime) -> int | None:
    # Only a prefix of the chain goes: up to just before the first event that is
    # still inside retention, so what remains is one unbroken run.
    events = AuditEvent.objects.filter(chain=chain)
    first_young = events.filter(occurred_at__gte=cutoff).aggregate(seq=Min("seq"))["seq"]
    if first_young is not None:
        through = first_young - 1
        return through if events.filter(seq=through).exists() else None
    return events.aggregate(seq=Max("seq"))["seq"]


def _write_checkpoint(chain: str, *, through: int, cutoff: datetime, now: datetime) -> AuditRetentionCheckpoint:
    last = AuditEvent.objects.get(chain=chain, seq=through)
    checkpoint = AuditRetentionCheckpoint(
        chain=chain, tenant_id=last.tenant_id, seq=through, hash=last.hash, cutoff=cutoff,
        purged_events=AuditEvent.objects.filter(chain=chain, seq__lte=through).count(), created_at=now)
    checkpoint.key_id, checkpoint.mac = signing.sign(checkpoint_document(checkpoint))
    checkpoint.save()
    return checkpoint


def _delete_covered(chain: str, through: int) -> int:
    """Delete the checkpointed events in batches (each its own short transaction)."""
    deleted = 0
    while True:
        with platform_scope():
            seqs = list(AuditEvent.objects.filter(chain=chain, seq__lte=through)
                        .order_by("seq").values_list("seq", flat=True)[:PURGE_BATCH])
            if not seqs:
                return deleted
            count, _ = AuditEvent.objects.filter(chain=chain, seq__gte=seqs[0], seq__lte=seqs[-1]).delete()
            deleted += count
