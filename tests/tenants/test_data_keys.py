"""Tenant data keys through the real KMS providers: local keyring and AWS KMS (moto server over HTTP)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from io import StringIO

import boto3
import numpy as np
import pytest
from django.core.management import call_command
from django.utils import timezone

from audit.services import Actor
from embeddings.models import Face
from embeddings.search import selectors
from embeddings.store import services
from faceservice.tenancy import tenant_context
from tenants import data_keys
from tenants.kms import DecryptionFailed, KeyDisabled
from tenants.models import TenantKey

ACTOR = Actor.system("tests")
MODEL = "test-model:keys"


@dataclass
class Detection:
    embedding: np.ndarray
    bbox: tuple = (0.0, 0.0, 50.0, 50.0)
    det_score: float = 0.99


@pytest.fixture
def fresh_kms():
    """Forget cached providers and plaintext keys, before and after (settings may change)."""
    data_keys.kms_provider.cache_clear()
    data_keys.key_cache().clear()
    yield
    data_keys.kms_provider.cache_clear()
    data_keys.key_cache().clear()


@pytest.fixture
def local_kms(settings, tmp_path, fresh_kms):
    settings.KMS_PROVIDER = "local"
    settings.LOCAL_KMS_KEY_FILE = str(tmp_path / "kms" / "master.keys")
    return settings.LOCAL_KMS_KEY_FILE


@pytest.fixture
def aws_kms(settings, fresh_kms):
    if not os.environ.get("AWS_ENDPOINT_URL"):
        pytest.skip("needs moto's server (./dev test starts it)")
    kms = boto3.client("kms")
    key_id = kms.create_key(Description="faceservice tests")["KeyMetadata"]["KeyId"]
    settings.KMS_PROVIDER, settings.KMS_KEY_ID = "aws", key_id
    return kms, key_id


def index_random(tenant, n=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, 64)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    services.replace_asset_faces(tenant_id=tenant.id, asset_id="a", faces=[Detection(v) for v in x],
                                 model_id=MODEL, submitted_at=timezone.now(), actor=ACTOR)
    return x


def stored_key(tenant) -> TenantKey:
    with tenant_context(tenant.id):
        return TenantKey.objects.get(tenant_id=tenant.id, status=TenantKey.Status.ACTIVE)


def test_local_keyring_is_private_and_only_the_wrapped_key_is_stored(tenant, local_kms):
    ref = data_keys.active_key(tenant_id=tenant.id)
    assert oct(os.stat(local_kms).st_mode & 0o777) == "0o600"
    row = stored_key(tenant)
    assert row.provider == "local" and ref.key not in bytes(row.wrapped_key)
    assert "redacted" in repr(ref)
    data_keys.key_cache().clear()
    assert data_keys.data_key(tenant_id=tenant.id, version=row.version) == ref.key


def test_aws_kms_round_trip_and_context_binding(tenant, other_tenant, aws_kms):
    ref = data_keys.active_key(tenant_id=tenant.id)
    row = stored_key(tenant)
    assert row.provider == "aws"
    data_keys.key_cache().clear()
    assert data_keys.data_key(tenant_id=tenant.id, version=1) == ref.key
    # The wrapped key of one tenant, copied into another tenant's row, does not unwrap.
    with tenant_context(other_tenant.id):
        TenantKey.objects.create(tenant_id=other_tenant.id, version=1, provider="aws",
                                 master_key_id=row.master_key_id, wrapped_key=bytes(row.wrapped_key))
    with pytest.raises(DecryptionFailed):
        data_keys.data_key(tenant_id=other_tenant.id, version=1)


def test_a_disabled_kms_key_is_refused_by_our_code(tenant, aws_kms):
    kms, key_id = aws_kms
    data_keys.active_key(tenant_id=tenant.id)
    kms.disable_key(KeyId=key_id)
    data_keys.kms_provider.cache_clear()
    data_keys.key_cache().clear()
    with pytest.raises(KeyDisabled):
        data_keys.data_key(tenant_id=tenant.id, version=1)


def test_master_rotation_rewraps_without_touching_faces(tenant, local_kms):
    x = index_random(tenant)
    with tenant_context(tenant.id):
        before = {f.id: bytes(f.embedding_ciphertext) for f in Face.objects.filter(tenant_id=tenant.id)}
    old_master = stored_key(tenant).master_key_id
    out = StringIO()
    call_command("rotate_keys", "master", stdout=out)
    row = stored_key(tenant)
    assert row.master_key_id != old_master and "Re-wrapped" in out.getvalue()
    with tenant_context(tenant.id):
        after = {f.id: bytes(f.embedding_ciphertext) for f in Face.objects.filter(tenant_id=tenant.id)}
    assert after == before
    data_keys.key_cache().clear()
    assert selectors.search_faces(tenant_id=tenant.id, embedding=x[2], model_id=MODEL, top_k=1)[0].similarity > 0.999


def test_tenant_rotation_command_moves_faces_and_retires_old_key(tenant, local_kms):
    x = index_random(tenant, n=7)
    call_command("rotate_keys", "tenant", tenant.name, stdout=StringIO())
    with tenant_context(tenant.id):
        versions = set(Face.objects.filter(tenant_id=tenant.id).values_list("key_version", flat=True))
        statuses = dict(TenantKey.objects.filter(tenant_id=tenant.id).values_list("version", "status"))
    assert versions == {2} and statuses == {1: "retired", 2: "active"}
    assert stored_key(tenant).wrapped_key is not None
    data_keys.key_cache().clear()
    assert selectors.search_faces(tenant_id=tenant.id, embedding=x[6], model_id=MODEL, top_k=1)[0].similarity > 0.999
