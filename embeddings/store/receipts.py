"""Deletion receipts: what a deletion removed, built the same way wherever it is told.

A receipt is made when a deletion commits (embeddings/store/services.py for
deletions done in the request, embeddings/store/deletion.py for queued ones),
sent in the `faces.deleted` webhook, and read back later from its audit event
(deletions never delete audit events). It holds ids the tenant gave and counts,
never face data. Its time is its audit event's `occurred_at`, one clock reading
wherever the receipt is shown, in the one format (faceservice/timestamps.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from audit.models import AuditEvent
from embeddings.store.models import DeletionRequest
from faceservice.timestamps import iso_utc

# The audit actions whose events carry a receipt.
RECEIPT_ACTIONS = ("faces.deleted", "faces.purged")
PURGE = {"purge": True}


@dataclass(frozen=True)
class DeletionReceipt:
    receipt_id: UUID
    requested: dict[str, Any]
    faces_deleted: int
    assets_deleted: int
    deleted_at: datetime | None
    keys_destroyed: int = 0
    face_ids: list[str] = field(default_factory=list)

    @property
    def action(self) -> str:
        """The audit action that records this receipt."""
        return "faces.purged" if self.requested.get("purge") else "faces.deleted"

    def audit_details(self) -> dict[str, int]:
        return {"faces_deleted": self.faces_deleted, "assets_deleted": self.assets_deleted,
                "keys_destroyed": self.keys_destroyed}

    def payload(self) -> dict[str, Any]:
        """The receipt as plain JSON values (webhook payloads, a queued deletion's answer)."""
        return {"receipt_id": str(self.receipt_id), "requested": self.requested,
                "faces_deleted": self.faces_deleted, "assets_deleted": self.assets_deleted,
                "keys_destroyed": self.keys_destroyed,
                "deleted_at": iso_utc(self.deleted_at) if self.deleted_at else None}

    @classmethod
    def of_deletion(cls, deletion: DeletionRequest) -> DeletionReceipt:
        """The receipt of a queued deletion (complete once it has succeeded)."""
        return cls(receipt_id=deletion.receipt_id, requested=deletion.requested,
                   faces_deleted=deletion.faces_deleted, assets_deleted=deletion.assets_deleted,
                   keys_destroyed=deletion.keys_destroyed, deleted_at=deletion.finished_at)

    @classmethod
    def of_audit_event(cls, event: AuditEvent) -> DeletionReceipt:
        """The receipt as its audit event recorded it."""
        return cls(receipt_id=event.receipt_id,
                   requested=event.target if event.action == "faces.deleted" else PURGE,
                   faces_deleted=event.details.get("faces_deleted", 0),
                   assets_deleted=event.details.get("assets_deleted", 0),
                   keys_destroyed=event.details.get("keys_destroyed", 0),
                   deleted_at=event.occurred_at)
