"""Data: re-seal every stored blob in the one format of faceservice/sealing.py.

Four places used to seal with AES-256-GCM, each in a format of its own. This
re-seals, in this migration's one transaction, whatever they stored:

1. the embedded KMS's wrapped data keys (``lk1`` blobs), under the same master
   keys, read from the keyring file (``LOCAL_KMS_KEY_FILE``);
2. face embeddings and inline images, under their tenant's data key, which it
   unwraps through the configured KMS as the service does (so after 1);
3. webhook signing secrets, under the settings' webhook key.

The old formats live only here, for this one conversion. The migrate job has
what the service has (settings, KMS access, the keyring's volume); with empty
tables (a new install, the test database) it opens no KMS and no keyring.

A blob that did not open in its old format (its data key destroyed, or
damaged) is left as it is: it opened before no more than it would now. Rows
that processes still running the old code write after this ran are not
converted: stop them while migrating (docs/SECURITY.md, "Sealed blobs").
"""

import base64
import hmac

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import migrations

from embeddings.indexing import inline_images
from embeddings.store import protection
from faceservice.tenancy import platform_scope
from tenants import data_keys
from tenants.kms import DecryptionFailed, LocalKmsProvider
from tenants.kms.base import canonical_context
from tenants.webhooks import signing

BATCH = 500


# --- The old formats (read only) --------------------------------------------------------

def _lp(*parts: bytes) -> bytes:
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def _open_v1(key: bytes, blob: bytes, aad: bytes) -> bytes | None:
    """0x01 || nonce(12) || AES-256-GCM ciphertext+tag: embeddings, inline images, webhook secrets."""
    blob = bytes(blob)
    if blob[:1] != b"\x01" or len(blob) < 1 + 12 + 16:
        return None
    try:
        return AESGCM(key).decrypt(blob[1:13], blob[13:], aad)
    except InvalidTag:
        return None


def _hkdf(secret: bytes, salt: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(secret)


def _open_embedding(dek: bytes, blob: bytes, *, tenant_id: str, face_id: str, key_version: int,
                    model_id: str) -> bytes | None:
    key = hmac.digest(dek, b"faceservice/embedding-encryption-key/v1\x01", "sha256")  # HKDF-Expand, one block
    aad = _lp(b"faceservice/embedding-aad/v1", b"\x01", tenant_id.encode(), face_id.encode(),
              key_version.to_bytes(8, "big"), model_id.encode())
    return _open_v1(key, blob, aad)


def _open_inline_image(dek: bytes, blob: bytes, *, tenant_id: str, job_id: str, job_asset_id: str,
                       key_version: int) -> bytes | None:
    key = _hkdf(dek, b"faceservice/inline-image/v1", b"inline-image|" + str(key_version).encode())
    aad = _lp(*(p.encode() for p in ("inline-image", tenant_id, job_id, job_asset_id, str(key_version))))
    return _open_v1(key, blob, aad)


def _open_lk1(master_key: bytes, blob: bytes, context: dict[str, str]) -> bytes | None:
    """b"lk1" || u8 len(key id) || key id || nonce(12) || AES-256-GCM ciphertext+tag."""
    if len(blob) < 4:
        return None
    header_end = 4 + blob[3]
    try:
        return AESGCM(master_key).decrypt(
            blob[header_end:header_end + 12], blob[header_end + 12:],
            b"faceservice/local-kms/wrap/v1\x00" + blob[:header_end] + canonical_context(context))
    except InvalidTag:
        return None


# --- Re-sealing ---------------------------------------------------------------------------

def rewrap_local_data_keys(TenantKey) -> None:
    rows = [row for row in TenantKey.objects.filter(provider="local", wrapped_key__isnull=False)
            if bytes(row.wrapped_key).startswith(b"lk1")]
    if not rows:
        return
    provider = LocalKmsProvider(path=settings.LOCAL_KMS_KEY_FILE, create=False)
    for row in rows:
        context = data_keys.encryption_context(row.tenant_id, row.version)
        # Reaching into the provider: no public API hands out master key
        # material (none should), and this conversion is its only other user.
        master = provider._key(row.master_key_id)
        dek = _open_lk1(master.material, bytes(row.wrapped_key), context)
        if dek is not None:
            row.wrapped_key = provider._wrap(master, dek, context)
            row.save(update_fields=["wrapped_key"])


def _data_key(tenant_id, version: int) -> bytes | None:
    try:
        return data_keys.data_key(tenant_id=tenant_id, version=version)
    except (data_keys.NoDataKey, DecryptionFailed):
        return None  # shredded or unreadable: so are its blobs, now as before


def reseal_faces(Face) -> None:
    for tenant_id, version in Face.objects.values_list("tenant_id", "key_version").distinct():
        dek = _data_key(tenant_id, version)
        if dek is None:
            continue
        rows = Face.objects.filter(tenant_id=tenant_id, key_version=version).order_by("id")
        last = None
        while batch := list((rows.filter(id__gt=last) if last else rows)
                            .only("id", "model_id", "embedding_ciphertext")[:BATCH]):
            last = batch[-1].id
            changed = []
            for face in batch:
                fields = {"tenant_id": str(tenant_id), "face_id": str(face.id), "key_version": version,
                          "model_id": face.model_id}
                payload = _open_embedding(dek, face.embedding_ciphertext, **fields)
                if payload is not None:
                    face.embedding_ciphertext = protection.encrypt_embedding(
                        dek=dek, embedding=np.frombuffer(payload, dtype="<f4"), **fields)
                    changed.append(face)
            Face.objects.bulk_update(changed, ["embedding_ciphertext"])


def reseal_inline_images(InlineImage) -> None:
    for image in InlineImage.objects.select_related("job_asset"):
        dek = _data_key(image.tenant_id, image.key_version)
        ids = {"tenant_id": str(image.tenant_id), "job_id": str(image.job_asset.job_id),
               "job_asset_id": str(image.job_asset_id)}
        data = _open_inline_image(dek, image.ciphertext, key_version=image.key_version, **ids) if dek else None
        if data is not None:
            key = data_keys.DataKeyRef(version=image.key_version, key=dek)
            image.ciphertext = inline_images.seal(data=data, key=key, **ids)
            image.save(update_fields=["ciphertext"])


def reseal_webhook_secrets(WebhookEndpoint) -> None:
    endpoints = list(WebhookEndpoint.objects.all())
    if not endpoints:
        return
    configured = settings.WEBHOOK_SECRETS_KEY
    material = base64.b64decode(configured) if configured else settings.SECRET_KEY.encode()
    old_key = _hkdf(material, b"faceservice/webhook-secrets/v1", b"webhook signing secrets")
    for endpoint in endpoints:
        for field in ("secret_ciphertext", "previous_secret_ciphertext"):
            blob = getattr(endpoint, field)
            aad = f"webhook-secret|{endpoint.tenant_id}|{endpoint.id}".encode()
            secret = _open_v1(old_key, blob, aad) if blob is not None else None
            if secret is not None:
                setattr(endpoint, field, signing.seal_secret(secret.decode(), tenant_id=endpoint.tenant_id,
                                                             endpoint_id=endpoint.id))
        endpoint.save(update_fields=["secret_ciphertext", "previous_secret_ciphertext"])


def reseal_everything(apps, schema_editor) -> None:
    with platform_scope():  # every tenant's rows: row-level security binds the owner role too
        rewrap_local_data_keys(apps.get_model("tenants", "TenantKey"))
        reseal_faces(apps.get_model("embeddings", "Face"))
        reseal_inline_images(apps.get_model("embeddings", "InlineImage"))
        reseal_webhook_secrets(apps.get_model("tenants", "WebhookEndpoint"))


class Migration(migrations.Migration):

    dependencies = [
        ("embeddings", "0005_search_galleries"),
        ("tenants", "0004_webhooks"),
    ]

    operations = [
        # Irreversible: the code before it reads only the old formats. Elidable:
        # a database made after it has nothing to convert.
        migrations.RunPython(reseal_everything, elidable=True),
    ]
