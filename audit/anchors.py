"""Anchoring chain heads: signed copies kept where a database owner cannot rewrite them.

A hash chain shows that an event in the middle was changed or removed, but not
that the newest events were cut off together with a rewind of the head. So every
AUDIT_ANCHOR_INTERVAL_SECONDS a beat task signs each chain head that moved
(HMAC-SHA256, key outside the database) and stores it:
- in `audit_anchor` (append-only by trigger), always;
- in an S3 bucket with Object Lock (COMPLIANCE mode, retention of
  AUDIT_ANCHOR_S3_RETENTION_DAYS), when AUDIT_ANCHOR_S3_BUCKET is set. Nobody,
  not even the bucket owner, can delete or overwrite those before they expire.
Verification then demands that every anchored (seq, hash) is still in the chain.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.utils import timezone

from audit import signing
from audit.models import AuditAnchor, AuditChainHead
from faceservice.tenancy import platform_scope

logger = logging.getLogger(__name__)
ANCHOR_VERSION = 1


def anchor_document(*, chain: str, tenant_id: Any, seq: int, hash: str, anchored_at: datetime) -> dict:
    """The signed content of an anchor (also the body of its S3 object, plus the MAC)."""
    return {"v": ANCHOR_VERSION, "chain": chain, "tenant_id": str(tenant_id) if tenant_id else None,
            "seq": seq, "hash": hash, "anchored_at": anchored_at.isoformat()}


def document_of(anchor: AuditAnchor) -> dict:
    return anchor_document(chain=anchor.chain, tenant_id=anchor.tenant_id, seq=anchor.seq,
                           hash=anchor.hash, anchored_at=anchor.anchored_at)


@dataclass(frozen=True)
class S3AnchorSink:
    """Writes anchors as JSON objects under <prefix><chain>/<seq>.json with Object Lock."""

    bucket: str
    prefix: str
    retention_days: int
    lock_mode: str = "COMPLIANCE"

    @classmethod
    def from_settings(cls) -> S3AnchorSink | None:
        bucket = getattr(settings, "AUDIT_ANCHOR_S3_BUCKET", "")
        if not bucket:
            return None
        return cls(bucket=bucket, prefix=settings.AUDIT_ANCHOR_S3_PREFIX,
                   retention_days=settings.AUDIT_ANCHOR_S3_RETENTION_DAYS,
                   lock_mode=settings.AUDIT_ANCHOR_S3_LOCK_MODE)

    def _client(self):
        import boto3  # only needed when an S3 sink is configured

        return boto3.client("s3")

    def key_for(self, chain: str, seq: int) -> str:
        return f"{self.prefix}{chain}/{seq:020d}.json"

    def put(self, document: dict, *, key_name: str, mac: str, now: datetime) -> str:
        body = json.dumps({**document, "key_id": key_name, "mac": mac}, sort_keys=True).encode()
        key = self.key_for(document["chain"], document["seq"])
        response = self._client().put_object(
            Bucket=self.bucket, Key=key, Body=body, ContentType="application/json",
            ObjectLockMode=self.lock_mode,
            ObjectLockRetainUntilDate=now + timedelta(days=self.retention_days),
        )
        version = response.get("VersionId")
        return f"s3://{self.bucket}/{key}" + (f"?versionId={version}" if version else "")

    def anchors_of(self, chain: str) -> list[dict]:
        """Every anchor document stored for a chain (for verification)."""
        client = self._client()
        found = []
        paginator = client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=f"{self.prefix}{chain}/"):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
                found.append(json.loads(body))
        return found


def anchor_chain_heads(*, now: datetime | None = None) -> list[AuditAnchor]:
    """Sign and store the head of every chain that moved since its last anchor. Idempotent."""
    now = now or timezone.now()
    sink = S3AnchorSink.from_settings()
    with platform_scope():
        heads = list(AuditChainHead.objects.filter(seq__gt=0))
        anchored = dict(AuditAnchor.objects.values_list("chain").annotate(Max("seq")))
    made = []
    for head in heads:
        if anchored.get(head.chain, 0) >= head.seq:
            continue
        made.append(_anchor(head, now=now, sink=sink))
    return made


def _anchor(head: AuditChainHead, *, now: datetime, sink: S3AnchorSink | None) -> AuditAnchor:
    document = anchor_document(chain=head.chain, tenant_id=head.tenant_id, seq=head.seq,
                               hash=head.hash, anchored_at=now)
    key_name, mac = signing.sign(document)
    # The object goes out first: if the insert below then fails, an extra
    # (true) anchor in S3 is harmless; the reverse would leave a gap.
    external_ref = sink.put(document, key_name=key_name, mac=mac, now=now) if sink else ""
    with platform_scope():
        return AuditAnchor.objects.create(
            chain=head.chain, tenant_id=head.tenant_id, seq=head.seq, hash=head.hash,
            anchored_at=now, key_id=key_name, mac=mac, external_ref=external_ref)
