"""Verifying a chain: recompute every hash, check every link, anchor and checkpoint.

What each check catches:
- an event's stored hash differs from the hash of its fields: the row was changed;
- an event's prev_hash differs from the previous event's hash: the previous row
  was changed and re-hashed (the chain names that previous event);
- a gap in seq: events were deleted (named by the first missing seq);
- the head says more events than there are, or an anchor names a (seq, hash)
  that is no longer there: the newest events were cut off;
- an anchor or checkpoint whose signature fails: it was forged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.utils import timezone

from audit import signing
from audit.anchors import S3AnchorSink, document_of
from audit.models import PLATFORM_CHAIN, AuditAnchor, AuditChainHead, AuditEvent, AuditVerification
from audit.retention import checkpoint_document, latest_checkpoint
from audit.services import GENESIS_HASH, event_hash, stored_values
from faceservice.tenancy import platform_scope

ITERATION_CHUNK = 5000


@dataclass(frozen=True)
class Problem:
    seq: int
    kind: str  # altered | relinked | missing | truncated | anchor_invalid | checkpoint_invalid
    message: str
    event_id: int | None = None


@dataclass
class ChainReport:
    chain: str
    tenant_id: str | None
    start_seq: int = 0
    head_seq: int = 0
    last_seq: int = 0
    events_checked: int = 0
    anchors_checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return min(self.problems, key=lambda p: p.seq) if self.problems else None


def all_chains() -> list[str]:
    with platform_scope():
        return list(AuditChainHead.objects.order_by("chain").values_list("chain", flat=True))


def verify_chain(chain: str, *, use_s3: bool = False) -> ChainReport:
    """Verify one chain end to end. Reads in platform scope: chains are per tenant."""
    with platform_scope():
        head = AuditChainHead.objects.filter(chain=chain).first()
        report = ChainReport(chain=chain, tenant_id=_tenant_of(chain, head))
        start_hash = _start(report)
        anchors = _anchors(chain, use_s3=use_s3, report=report)
        wanted = {a["seq"] for a in anchors}
        seen = _walk_events(report, start_hash, wanted)
        _check_head(report, head, seen)
        _check_anchors(report, anchors, seen)
    return report


def _tenant_of(chain: str, head: AuditChainHead | None) -> str | None:
    if head and head.tenant_id:
        return str(head.tenant_id)
    return None if chain == PLATFORM_CHAIN else chain


def _start(report: ChainReport) -> str:
    checkpoint = latest_checkpoint(report.chain)
    if checkpoint is None:
        return GENESIS_HASH
    valid = signing.verify(checkpoint_document(checkpoint), key_name=checkpoint.key_id, mac=checkpoint.mac)
    too_young = checkpoint.cutoff > checkpoint.created_at - timedelta(days=365)
    if not valid or too_young:
        report.problems.append(Problem(
            seq=checkpoint.seq, kind="checkpoint_invalid",
            message=f"retention checkpoint at seq {checkpoint.seq} is "
                    + ("not validly signed" if not valid else "younger than the minimum retention")))
    report.start_seq = checkpoint.seq
    return checkpoint.hash


def _walk_events(report: ChainReport, prev_hash: str, wanted: set[int]) -> dict[int, str]:
    """Check every event after the start; return the hashes of the anchored seqs."""
    seen: dict[int, str] = {report.start_seq: prev_hash}
    expected, prev_id = report.start_seq + 1, None
    events = (AuditEvent.objects.filter(chain=report.chain, seq__gt=report.start_seq)
              .order_by("seq").iterator(chunk_size=ITERATION_CHUNK))
    for event in events:
        if event.seq != expected:
            report.problems.append(_missing(expected, event.seq - 1))
        elif event.prev_hash != prev_hash:
            report.problems.append(Problem(
                seq=expected - 1, kind="relinked", event_id=prev_id,
                message=f"event seq {expected - 1} no longer has the hash that event seq {event.seq} "
                        "chained to: it was changed (and re-hashed) or replaced"))
        if event_hash(stored_values(event)) != event.hash:
            report.problems.append(Problem(
                seq=event.seq, kind="altered", event_id=event.id,
                message=f"event seq {event.seq} (id {event.id}) does not match its hash: "
                        "its fields were changed"))
        if event.seq in wanted:
            seen[event.seq] = event.hash
        prev_hash, prev_id, expected = event.hash, event.id, event.seq + 1
        report.events_checked += 1
    report.last_seq = expected - 1
    seen[report.last_seq] = prev_hash
    return seen


def _missing(first: int, last: int) -> Problem:
    span = f"seq {first}" if first == last else f"seq {first}..{last}"
    return Problem(seq=first, kind="missing", message=f"event {span} is missing (deleted)")


def _check_head(report: ChainReport, head: AuditChainHead | None, seen: dict[int, str]) -> None:
    if head is None:
        return
    report.head_seq = head.seq
    if head.seq > report.last_seq:
        report.problems.append(_missing(report.last_seq + 1, head.seq))
    elif head.seq == report.last_seq and head.hash != seen[report.last_seq]:
        report.problems.append(Problem(seq=head.seq, kind="altered",
                                       message=f"the chain head does not match event seq {head.seq}"))


def _anchors(chain: str, *, use_s3: bool, report: ChainReport) -> list[dict[str, Any]]:
    documents = []
    for anchor in AuditAnchor.objects.filter(chain=chain, seq__gt=report.start_seq):
        documents.append({**document_of(anchor), "key_id": anchor.key_id, "mac": anchor.mac,
                          "source": "database"})
    sink = S3AnchorSink.from_settings() if use_s3 else None
    if sink:
        documents += [{**d, "source": "s3"} for d in sink.anchors_of(chain) if d["seq"] > report.start_seq]
    return documents


def _check_anchors(report: ChainReport, anchors: list[dict[str, Any]], seen: dict[int, str]) -> None:
    for anchor in anchors:
        source, key_name, mac = anchor.pop("source"), anchor.pop("key_id"), anchor.pop("mac")
        report.anchors_checked += 1
        if not signing.verify(anchor, key_name=key_name, mac=mac):
            report.problems.append(Problem(seq=anchor["seq"], kind="anchor_invalid",
                                           message=f"{source} anchor at seq {anchor['seq']} is not validly signed"))
        elif anchor["seq"] > report.last_seq:
            report.problems.append(Problem(
                seq=report.last_seq + 1, kind="truncated",
                message=f"{source} anchor says seq {anchor['seq']} existed; the chain ends at "
                        f"{report.last_seq}: events seq {report.last_seq + 1}..{anchor['seq']} were cut off"))
        elif seen.get(anchor["seq"]) != anchor["hash"]:
            report.problems.append(Problem(
                seq=anchor["seq"], kind="altered",
                message=f"event seq {anchor['seq']} differs from its {source} anchor"))


def record_verification(report: ChainReport) -> AuditVerification:
    """Keep the latest result per chain for the console (a cache, not evidence)."""
    first = report.first_problem
    with platform_scope():
        verification, _ = AuditVerification.objects.update_or_create(
            chain=report.chain,
            defaults={"tenant_id": report.tenant_id, "verified_at": timezone.now(), "ok": report.ok,
                      "events_checked": report.events_checked, "anchors_checked": report.anchors_checked,
                      "head_seq": report.head_seq, "first_bad_seq": first.seq if first else None,
                      "first_bad_event_id": first.event_id if first else None,
                      "problem": first.message[:300] if first else ""})
    return verification
