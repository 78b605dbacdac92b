"""Inline images: sealed in the web process, never plain in the broker or the database."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.db import connection, transaction

from embeddings.indexing import claims as job_claims
from embeddings.indexing import completion, inline_images
from embeddings.indexing import services as job_services
from embeddings.indexing import sweep as sweeper
from embeddings.models import IndexJobAsset, InlineImage
from faceservice.tenancy import platform_scope, tenant_context
from tests.conftest import FACES_DIR, count, find, update
from tests.embeddings.indexing.conftest import complete, now

PHOTO = FACES_DIR / "known-people" / "enroll" / "biden" / "biden.jpg"


@pytest.fixture
def photo() -> bytes:
    return PHOTO.read_bytes()


@pytest.fixture
def commit_now(monkeypatch):
    """Run after-commit work (the real broker publish) at once."""
    monkeypatch.setattr("django.db.transaction.on_commit", lambda fn, using=None, robust=False: fn())


def fragments(data: bytes) -> dict[str, bytes]:
    """Pieces of the image in every form it could leak as."""
    middle = len(data) // 2
    raw = data[middle:middle + 48]
    b64 = base64.b64encode(data)
    return {"raw": raw, "hex": raw.hex().encode(), "base64": b64[len(b64) // 2:len(b64) // 2 + 64]}


def leaks(blob: bytes, pieces: dict[str, bytes]) -> list[str]:
    return [name for name, piece in pieces.items() if piece in blob]


def redis_values(client) -> list[bytes]:
    """Every value in Redis, with Celery/kombu envelopes opened (their body is base64)."""
    values: list[bytes] = []
    for key in client.scan_iter(count=1000):
        kind = client.type(key).decode()
        if kind == "string":
            values.append(client.get(key) or b"")
        elif kind == "list":
            values.extend(client.lrange(key, 0, -1))
        elif kind == "hash":
            values.extend(client.hgetall(key).values())
        elif kind == "set":
            values.extend(client.smembers(key))
        elif kind == "zset":
            values.extend(client.zrange(key, 0, -1))
    opened = []
    for value in values:
        opened.append(value)
        try:
            envelope = json.loads(value)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(envelope, list):  # kombu's unacked hash holds [message, exchange, routing key]
            envelope = envelope[0] if envelope and isinstance(envelope[0], dict) else {}
        if isinstance(envelope, dict) and isinstance(envelope.get("body"), str):
            opened.append(base64.b64decode(envelope["body"]))
    return opened


def database_text() -> dict[str, str]:
    """The text form of every row of every table (bytea prints as hex)."""
    found = {}
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
    for table in tables:
        try:
            with transaction.atomic(), platform_scope(), connection.cursor() as cursor:
                cursor.execute(f'SELECT t::text FROM "{table}" t')  # noqa: S608 - names from the catalog
                found[table] = "\n".join(row[0] for row in cursor.fetchall())
        except Exception:  # noqa: S112 - a table the application role may not read cannot hold what it wrote
            continue
    return found


def submit_inline(tenant, photo: bytes):
    from embeddings.image_sources import ImageSource
    from tests.embeddings.indexing.conftest import submit

    spec = job_services.AssetSpec(asset_id="inline-1", source=ImageSource(data=photo))
    return submit(tenant, [spec])


def test_nothing_of_an_inline_image_is_plain_in_redis_or_the_database(tenant, client_for, photo, commit_now):
    client = client_for(tenant, roles=("indexer",))
    response = client.post("/v1/index-jobs", {"assets": [
        {"asset_id": "inline-1", "image": {"base64": base64.b64encode(photo).decode()}}]}, format="json")
    assert response.status_code == 202
    (row,) = find(IndexJobAsset, job_id=response.json()["id"])
    pieces = fragments(photo)

    broker = redis.Redis.from_url(django_settings.CELERY_BROKER_URL)
    ours = [v for v in redis_values(broker) if str(row.id).encode() in v]
    assert ours, "the job's message should be in the broker"
    for value in redis_values(broker):
        assert not leaks(value, pieces), "image bytes found in Redis"
    # The message itself carries only ids: the tenant's and its batch of job assets.
    bodies = [json.loads(v) for v in ours if v.startswith(b"[")]
    assert [[str(tenant.id), [str(row.id)]], {}] in [b[:2] for b in bodies]

    tables = database_text()
    for table, text in tables.items():
        for name, piece in fragments(photo).items():
            assert piece.decode("latin-1") not in text, f"{name} image data in table {table}"
    (sealed,) = find(InlineImage, order_by="job_asset_id", job_asset_id=row.id)
    # Control: the scan does see bytea columns (here, the ciphertext itself).
    assert bytes(sealed.ciphertext)[20:68].hex() in tables["embeddings_inlineimage"]
    assert len(bytes(sealed.ciphertext)) == 1 + 12 + len(photo) + 16  # format, nonce, body, tag
    _remove_messages(broker, row.id)


def _remove_messages(broker, job_asset_id) -> None:
    # Leave no message of this (rolled back) test behind for a later real worker.
    for value in broker.lrange("index", 0, -1):
        if str(job_asset_id).encode() in base64.b64decode(json.loads(value).get("body", "")):
            broker.lrem("index", 0, value)


def test_sealed_image_opens_only_for_its_own_tenant_job_and_asset(tenant, other_tenant, photo, published):
    job = submit_inline(tenant, photo)
    (row,) = find(IndexJobAsset, job_id=job.id)
    with tenant_context(tenant.id):
        assert inline_images.read(tenant_id=tenant.id, job_id=job.id, job_asset_id=row.id) == photo
    (sealed,) = find(InlineImage, order_by="job_asset_id", job_asset_id=row.id)
    blob, version = bytes(sealed.ciphertext), sealed.key_version
    for wrong in ({"job_id": row.id, "job_asset_id": row.id}, {"job_id": job.id, "job_asset_id": job.id}):
        with pytest.raises(inline_images.InlineImageUnavailable):
            inline_images.open_sealed(blob=blob, tenant_id=tenant.id, key_version=version, **wrong)
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(inline_images.InlineImageUnavailable):
        inline_images.open_sealed(blob=tampered, tenant_id=tenant.id, job_id=job.id, job_asset_id=row.id,
                                  key_version=version)
    with pytest.raises(inline_images.InlineImageUnavailable):  # another tenant's key does not open it
        inline_images.open_sealed(blob=blob, tenant_id=other_tenant.id, job_id=job.id, job_asset_id=row.id,
                                  key_version=version)


def test_the_image_key_is_not_the_data_key(tenant, photo, published):
    from tenants import data_keys

    key = data_keys.active_key(tenant_id=tenant.id)
    derived = inline_images._image_key(key.key, key.version)
    assert derived != key.key and len(derived) == 32


def test_sealed_image_is_deleted_when_its_asset_finishes(tenant, photo, published):
    job = submit_inline(tenant, photo)
    (row,) = find(IndexJobAsset, job_id=job.id)
    claim = job_claims.claim_asset(tenant_id=tenant.id, job_asset_id=row.id)
    complete(claim)
    assert count(InlineImage, job_asset_id=row.id) == 0


def test_sealed_image_is_deleted_when_its_job_is_cancelled(tenant, photo, published):
    job = submit_inline(tenant, photo)
    job_services.cancel_job(tenant_id=tenant.id, job_id=job.id, actor=completion.WORKER_ACTOR)
    assert count(InlineImage, tenant_id=tenant.id) == 0


def test_an_expired_inline_image_fails_its_asset_and_is_purged(tenant, photo, published):
    job = submit_inline(tenant, photo)
    (row,) = find(IndexJobAsset, job_id=job.id)
    update(InlineImage, {"job_asset_id": row.id}, expires_at=now() - timedelta(seconds=1))
    assert sweeper.sweep().inline_expired == 1
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert row.state == "failed" and row.error_code == "inline_image_expired"
    assert count(InlineImage, job_asset_id=row.id) == 0
