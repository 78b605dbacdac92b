"""Deleting a subject, and purging a tenant, leave nothing of them behind: faces enrolled through a real
index job (its per-asset results name assets, subjects and faces), then every table scanned as the
PostgreSQL superuser for their ids. What does remain by design (the audit log) is in docs/SECURITY.md."""

from __future__ import annotations

import base64
import uuid

import pytest
from rest_framework.test import APIClient

from embeddings.indexing.pipeline import run_asset
from embeddings.models import Face, IndexJobAsset
from faceservice.tenancy import platform_scope
from tests.conftest import FACES_DIR, rows_mentioning

ENROLL = FACES_DIR / "known-people" / "enroll"
pytestmark = pytest.mark.skipif(not ENROLL.is_dir(), reason=f"{ENROLL} is missing")


@pytest.fixture
def indexed(committed_db):
    """A new tenant with two people enrolled through one index job, processed in this process."""
    from audit.services import Actor
    from tenants import services

    operator = Actor.operator("tests")
    tenant = services.create_tenant(name=f"residue-{uuid.uuid4().hex[:10]}", actor=operator)
    key = services.create_api_key(tenant_id=tenant.id, name="t", roles=["admin", "indexer"], actor=operator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    people = {f"subject-{uuid.uuid4().hex}": (f"asset-{uuid.uuid4().hex}", ENROLL / name / f"{name}.jpg")
              for name in ("obama", "biden")}
    job = client.post("/v1/index-jobs", {"assets": [
        {"asset_id": asset, "subject_id": subject, "image": {"base64": base64.b64encode(path.read_bytes()).decode()}}
        for subject, (asset, path) in people.items()]}, format="json").json()
    with platform_scope():
        rows = list(IndexJobAsset.objects.filter(job_id=job["id"]).values_list("id", flat=True))
    assert [run_asset(tenant_id=str(tenant.id), job_asset_id=str(row)) for row in rows] == ["succeeded"] * 2
    return tenant, client, people


def needles_of(tenant, subject: str, asset: str) -> list[str]:
    with platform_scope():
        face_ids = [str(f) for f in Face.objects.filter(tenant_id=tenant.id, subject_id=subject)
                    .values_list("id", flat=True)]
    assert face_ids
    return [subject, asset, *face_ids]


def test_deleting_a_subject_leaves_nothing_of_it(indexed):
    tenant, client, people = indexed
    (gone, (gone_asset, _)), (kept, (kept_asset, _)) = people.items()
    gone_needles, kept_needles = needles_of(tenant, gone, gone_asset), needles_of(tenant, kept, kept_asset)
    found = rows_mentioning(gone_needles)
    assert any(place.startswith("embeddings_indexjobasset") for place in found), found  # the job names it

    receipt = client.post("/v1/faces/delete", {"subject_ids": [gone]}, format="json")
    assert receipt.status_code == 200 and receipt.json()["faces_deleted"] == 1

    assert rows_mentioning(gone_needles) == {}
    assert len(rows_mentioning(kept_needles)) >= 3  # the other person's faces, asset and job result stay


def test_purging_a_tenant_leaves_nothing_of_its_people(indexed):
    tenant, client, people = indexed
    needles = [needle for subject, (asset, _) in people.items() for needle in needles_of(tenant, subject, asset)]
    assert rows_mentioning(needles)

    receipt = client.post("/v1/faces/purge", {"confirm": "delete all face data"}, format="json")
    assert receipt.status_code == 200 and receipt.json()["faces_deleted"] == 2

    assert rows_mentioning(needles) == {}
