"""Migration 0006: blobs stored in the four old per-module formats, re-sealed in the one format.

The old blobs are made here with the old code's own recipe (copied from before the
change), so the test does not trust the migration's reading of them.
"""

from __future__ import annotations

import base64
import hmac
import importlib
import os
import struct

import numpy as np
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.db import connection
from django.db.migrations.loader import MigrationLoader

from embeddings.image_sources import ImageSource
from embeddings.indexing import inline_images
from embeddings.indexing import services as job_services
from embeddings.models import Face, IndexJobAsset, InlineImage
from embeddings.store import selectors as store_selectors
from faceservice.sealing import SealError
from faceservice.tenancy import platform_scope, tenant_context
from tenants import data_keys
from tenants.kms import DecryptionFailed
from tenants.kms.base import canonical_context
from tenants.models import TenantKey, WebhookEndpoint
from tenants.webhooks import services as webhooks
from tenants.webhooks.signing import open_secret
from tests.conftest import find, local_server
from tests.embeddings.conftest import ACTOR, index, unit

MIGRATION = ("embeddings", "0006_reseal_in_one_format")
migration = importlib.import_module("embeddings.migrations." + MIGRATION[1])


def _lp(*parts: bytes) -> bytes:
    return b"".join(struct.pack(">I", len(p)) + p for p in parts)


def _v1(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(12)
    return b"\x01" + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def old_embedding(dek, vector, *, tenant_id, face_id, key_version, model_id) -> bytes:
    key = hmac.digest(dek, b"faceservice/embedding-encryption-key/v1" + b"\x01", "sha256")
    aad = _lp(b"faceservice/embedding-aad/v1", b"\x01", tenant_id.encode(), face_id.encode(),
              key_version.to_bytes(8, "big"), model_id.encode())
    return _v1(key, vector.astype("<f4").tobytes(), aad)


def old_inline_image(dek, data, *, tenant_id, job_id, job_asset_id, key_version) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"faceservice/inline-image/v1",
               info=b"inline-image|" + str(key_version).encode()).derive(dek)
    aad = _lp(*(p.encode() for p in ("inline-image", tenant_id, job_id, job_asset_id, str(key_version))))
    return _v1(key, data, aad)


def old_webhook_secret(secret, *, tenant_id, endpoint_id) -> bytes:
    configured = settings.WEBHOOK_SECRETS_KEY
    material = base64.b64decode(configured) if configured else settings.SECRET_KEY.encode()
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=b"faceservice/webhook-secrets/v1",
               info=b"webhook signing secrets").derive(material)
    return _v1(key, secret.encode(), f"webhook-secret|{tenant_id}|{endpoint_id}".encode())


def old_lk1(master_key, key_id, dek, context) -> bytes:
    kid = key_id.encode("ascii")
    header = b"lk1" + bytes([len(kid)]) + kid
    nonce = os.urandom(12)
    aad = b"faceservice/local-kms/wrap/v1\x00" + header + canonical_context(context)
    return header + nonce + AESGCM(master_key).encrypt(nonce, dek, aad)


@pytest.fixture
def local_kms(settings):
    if settings.KMS_PROVIDER != "local":
        pytest.skip("the lk1 conversion is for the embedded KMS")
    data_keys.kms_provider.cache_clear()
    data_keys.key_cache().clear()
    yield data_keys.kms_provider()
    data_keys.kms_provider.cache_clear()
    data_keys.key_cache().clear()


@pytest.fixture
def hook_url(settings) -> str:
    with local_server(settings) as server:
        yield server.serve("/hook", (200, b"ok"))


def test_every_old_blob_is_resealed_and_reads_as_before(tenant, local_kms, hook_url):
    # The test's transaction never commits, so nothing is published to the broker.
    key = data_keys.active_key(tenant_id=tenant.id)
    vector = unit(np.random.default_rng(7))[0]
    (face_id,) = index(tenant, "asset-1", [vector]).face_ids
    with tenant_context(tenant.id):
        face = Face.objects.get(id=face_id)
    issued = webhooks.create_endpoint(tenant_id=tenant.id, url=hook_url,
                                      events=["job.succeeded"], actor=ACTOR)
    job = job_services.submit_index_job(
        tenant_id=tenant.id, assets=[job_services.AssetSpec(asset_id="inline-1", source=ImageSource(data=b"img"))],
        options=job_services.JobOptions(), actor=ACTOR, fingerprint="fp").job
    (job_asset,) = find(IndexJobAsset, job_id=job.id)

    # Put everything back in the old formats, as a database from before the change holds it.
    ids = {"tenant_id": str(tenant.id), "key_version": key.version}
    with platform_scope():
        row = TenantKey.objects.get(tenant_id=tenant.id, version=key.version)
        master = local_kms._key(row.master_key_id)
        TenantKey.objects.filter(id=row.id).update(wrapped_key=old_lk1(
            master.material, row.master_key_id, key.key, data_keys.encryption_context(tenant.id, key.version)))
        Face.objects.filter(id=face.id).update(embedding_ciphertext=old_embedding(
            key.key, vector, face_id=str(face.id), model_id=face.model_id, **ids))
        InlineImage.objects.filter(job_asset_id=job_asset.id).update(ciphertext=old_inline_image(
            key.key, b"img", job_id=str(job.id), job_asset_id=str(job_asset.id), **ids))
        WebhookEndpoint.objects.filter(id=issued.endpoint.id).update(secret_ciphertext=old_webhook_secret(
            issued.secret, tenant_id=tenant.id, endpoint_id=issued.endpoint.id))
    data_keys.key_cache().clear()
    with pytest.raises(SealError):  # control: today's code reads none of it
        open_secret(old_webhook_secret("x", tenant_id=tenant.id, endpoint_id=issued.endpoint.id),
                    tenant_id=tenant.id, endpoint_id=issued.endpoint.id)
    with pytest.raises(DecryptionFailed):
        data_keys.data_key(tenant_id=tenant.id, version=key.version)

    historical = MigrationLoader(connection).project_state(MIGRATION).apps  # the models as the migration sees them
    migration.reseal_everything(historical, None)
    migration.reseal_everything(historical, None)  # a second run changes nothing it cannot read
    data_keys.key_cache().clear()

    with platform_scope():
        assert not bytes(TenantKey.objects.get(id=row.id).wrapped_key).startswith(b"lk1")
    assert data_keys.data_key(tenant_id=tenant.id, version=key.version) == key.key
    embedding, _model = store_selectors.face_embedding(tenant_id=tenant.id, face_id=face.id)
    assert np.array_equal(embedding, vector)
    with tenant_context(tenant.id):
        assert inline_images.read(tenant_id=tenant.id, job_id=job.id, job_asset_id=job_asset.id) == b"img"
        endpoint = WebhookEndpoint.objects.get(id=issued.endpoint.id)
    assert open_secret(endpoint.secret_ciphertext, tenant_id=tenant.id, endpoint_id=endpoint.id) == issued.secret
