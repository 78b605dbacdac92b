"""What the face store tells the packages above it when face data goes.

Index jobs keep per-asset results that name assets, subjects and faces
(embeddings/indexing/scrub.py): a deletion must reach them too, and the store
may not import the packages built on it. So every deletion of face data sends
`face_data_deleted` inside its transaction; receivers scrub in the same
transaction, and a failure rolls the deletion back with them.
"""

from __future__ import annotations

from collections.abc import Iterable
from uuid import UUID

from django.dispatch import Signal

# kwargs: tenant_id, collection_id (None: every collection), face_ids, asset_ids, subject_ids, purge.
face_data_deleted = Signal()


def send_deleted(*, tenant_id: UUID | str, collection_id: UUID | None = None, face_ids: Iterable = (),
                 asset_ids: Iterable[str] = (), subject_ids: Iterable[str] = (), purge: bool = False) -> None:
    """Tell the receivers what was deleted (inside the deletion's transaction)."""
    face_data_deleted.send(sender=None, tenant_id=str(tenant_id), collection_id=collection_id,
                           face_ids=[str(f) for f in face_ids], asset_ids=list(asset_ids),
                           subject_ids=list(subject_ids), purge=purge)
