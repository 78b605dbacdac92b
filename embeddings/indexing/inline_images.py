"""Inline images of index jobs, sealed before they leave the web process.

An image sent inline with a job must wait for a worker, and the privacy
promise forbids keeping it in plain text anywhere on the way (broker,
database, logs). So the web process seals it (faceservice/sealing.py) under a
key derived for this one purpose from the tenant's data key (its own HKDF
salt: it never equals the key that seals embeddings), with the tenant, the
job, the job-asset row and the key version bound as associated data, so a
blob copied to another row, job or tenant does not open. Only the sealed
blob is stored (InlineImage), and only until the asset finishes or the TTL
ends; the broker message names the job-asset id, nothing else.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from uuid import UUID

from django.conf import settings
from django.utils import timezone

from embeddings.engine.errors import ImageError, ImageTooLarge
from embeddings.indexing.models import InlineImage
from faceservice import sealing
from tenants import data_keys

_SALT = b"faceservice/inline-image/v1"


class InlineImageUnavailable(ImageError):
    """The sealed image is gone (TTL passed, job cancelled) or no longer opens."""

    code = "inline_image_expired"
    http_status = 410
    default_message = "the inline image is no longer available; submit it again"


def _image_key(dek: bytes, key_version: int) -> bytes:
    return sealing.derive_key(dek, salt=_SALT, info=sealing.associated_data(int(key_version)))


def associated_data(*, tenant_id: UUID | str, job_id: UUID | str, job_asset_id: UUID | str,
                    key_version: int) -> bytes:
    return sealing.associated_data("inline-image", str(tenant_id), str(job_id), str(job_asset_id),
                                   int(key_version))


def seal(*, data: bytes, tenant_id: UUID | str, job_id: UUID | str, job_asset_id: UUID | str,
         key: data_keys.DataKeyRef) -> bytes:
    aad = associated_data(tenant_id=tenant_id, job_id=job_id, job_asset_id=job_asset_id,
                          key_version=key.version)
    return sealing.seal(_image_key(key.key, key.version), data, associated_data=aad)


def open_sealed(*, blob: bytes, tenant_id: UUID | str, job_id: UUID | str, job_asset_id: UUID | str,
                key_version: int) -> bytes:
    try:
        dek = data_keys.data_key(tenant_id=tenant_id, version=key_version)
    except data_keys.NoDataKey:
        raise InlineImageUnavailable("the key that sealed the inline image is gone") from None
    aad = associated_data(tenant_id=tenant_id, job_id=job_id, job_asset_id=job_asset_id,
                          key_version=key_version)
    try:
        return sealing.open_sealed(_image_key(dek, key_version), blob, associated_data=aad)
    except sealing.SealError:
        raise InlineImageUnavailable("the inline image does not open (tampered or misplaced)") from None


def expiry(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.INLINE_IMAGE_TTL_SECONDS)


def sealed_rows(*, tenant_id: UUID | str, job_id: UUID | str, images: Mapping[UUID, bytes],
                key: data_keys.DataKeyRef, now: datetime | None = None) -> list[InlineImage]:
    """Unsaved InlineImage rows for {job-asset id: image bytes} (the caller saves them).

    An image over MAX_IMAGE_BYTES is refused here, whichever path submitted it: stored,
    it would only wait for a worker to fail it (the API names the asset before this).
    """
    if any(len(data) > settings.MAX_IMAGE_BYTES for data in images.values()):
        raise ImageTooLarge(f"an inline image is larger than {settings.MAX_IMAGE_BYTES} bytes")
    expires_at = expiry(now)
    return [
        InlineImage(job_asset_id=job_asset_id, tenant_id=tenant_id, key_version=key.version,
                    expires_at=expires_at,
                    ciphertext=seal(data=data, tenant_id=tenant_id, job_id=job_id,
                                    job_asset_id=job_asset_id, key=key))
        for job_asset_id, data in images.items()
    ]


def read(*, tenant_id: UUID | str, job_id: UUID | str, job_asset_id: UUID | str) -> bytes:
    """The plain image bytes, in memory only. Call inside the tenant's context."""
    row = InlineImage.objects.filter(tenant_id=tenant_id, job_asset_id=job_asset_id).first()
    if row is None or row.expires_at <= timezone.now():
        raise InlineImageUnavailable()
    return open_sealed(blob=row.ciphertext, tenant_id=tenant_id, job_id=job_id, job_asset_id=job_asset_id,
                       key_version=row.key_version)


def discard(*, tenant_id: UUID | str, job_asset_ids: list[UUID]) -> int:
    """Delete the sealed images of these job assets (they finished or were cancelled)."""
    deleted, _ = InlineImage.objects.filter(tenant_id=tenant_id, job_asset_id__in=job_asset_ids).delete()
    return deleted
