"""Inline images of index jobs, encrypted before they leave the web process.

An image sent inline with a job must wait for a worker, and the privacy
promise forbids keeping it in plain text anywhere on the way (broker,
database, logs). So the web process seals it with AES-256-GCM under a key
derived for this one purpose from the tenant's data key (HKDF-SHA256, its own
salt and label: it never equals the key that seals embeddings), with the
tenant, the job, the job-asset row and the key version bound as associated
data, so a blob copied to another row, job or tenant does not open. Only the
ciphertext is stored (InlineImage), and only until the asset finishes or the
TTL ends; the broker message names the job-asset id, nothing else.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from datetime import datetime, timedelta
from uuid import UUID

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.utils import timezone

from embeddings.engine.errors import ImageError
from embeddings.models import InlineImage
from tenants import data_keys

_SALT = b"faceservice/inline-image/v1"
_FORMAT = b"\x01"
_NONCE_BYTES = 12


class InlineImageUnavailable(ImageError):
    """The sealed image is gone (TTL passed, job cancelled) or no longer opens."""

    code = "inline_image_expired"
    http_status = 410
    default_message = "the inline image is no longer available; submit it again"


def _image_key(dek: bytes, key_version: int) -> bytes:
    info = b"inline-image|" + str(int(key_version)).encode()
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=_SALT, info=info).derive(dek)


def _lp(*parts: str) -> bytes:
    # Length-prefixed, so ("ab", "c") and ("a", "bc") never give the same bytes.
    return b"".join(struct.pack(">I", len(p.encode())) + p.encode() for p in parts)


def associated_data(*, tenant_id: UUID | str, job_id: UUID | str, job_asset_id: UUID | str,
                    key_version: int) -> bytes:
    return _lp("inline-image", str(tenant_id), str(job_id), str(job_asset_id), str(int(key_version)))


def seal(*, data: bytes, tenant_id: UUID | str, job_id: UUID | str, job_asset_id: UUID | str,
         key: data_keys.DataKeyRef) -> bytes:
    """format byte + 96-bit random nonce + AES-GCM(ciphertext + tag)."""
    nonce = os.urandom(_NONCE_BYTES)
    aad = associated_data(tenant_id=tenant_id, job_id=job_id, job_asset_id=job_asset_id,
                          key_version=key.version)
    return _FORMAT + nonce + AESGCM(_image_key(key.key, key.version)).encrypt(nonce, data, aad)


def open_sealed(*, blob: bytes, tenant_id: UUID | str, job_id: UUID | str, job_asset_id: UUID | str,
                key_version: int) -> bytes:
    blob = bytes(blob)
    if blob[:1] != _FORMAT:
        raise InlineImageUnavailable("the inline image has an unknown format")
    try:
        dek = data_keys.data_key(tenant_id=tenant_id, version=key_version)
    except data_keys.NoDataKey:
        raise InlineImageUnavailable("the key that sealed the inline image is gone") from None
    aad = associated_data(tenant_id=tenant_id, job_id=job_id, job_asset_id=job_asset_id,
                          key_version=key_version)
    try:
        return AESGCM(_image_key(dek, key_version)).decrypt(blob[1:1 + _NONCE_BYTES],
                                                            blob[1 + _NONCE_BYTES:], aad)
    except InvalidTag:
        raise InlineImageUnavailable("the inline image does not open (tampered or misplaced)") from None


def expiry(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=settings.INLINE_IMAGE_TTL_SECONDS)


def sealed_rows(*, tenant_id: UUID | str, job_id: UUID | str, images: Mapping[UUID, bytes],
                key: data_keys.DataKeyRef, now: datetime | None = None) -> list[InlineImage]:
    """Unsaved InlineImage rows for {job-asset id: image bytes} (the caller saves them)."""
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
