"""Compare (stateless), delete with receipts, purge, statistics."""

from __future__ import annotations

import base64

import pytest
from django.db import connection

from tests.embeddings.conftest import KNOWN, PROBES, photo, table_counts


def b64(path) -> dict:
    return {"base64": base64.b64encode(photo(path)).decode()}


def test_compare_same_and_different_people_and_stores_nothing(tenant, client_for):
    client = client_for(tenant, ("comparer",))
    before = table_counts()
    response = client.post("/v1/compare", {
        "target": b64(PROBES / "obama1.jpg"),
        "references": [{"name": "obama", "image": b64(KNOWN / "enroll/obama/obama.jpg")},
                       {"name": "biden", "image": b64(KNOWN / "enroll/biden/biden.jpg")},
                       {"name": "garbage", "image": {"base64": base64.b64encode(b"nope").decode()}}],
    }, format="json")
    assert response.status_code == 200, response.content
    results = {c["name"]: c for c in response.json()["comparisons"]}
    assert results["obama"]["match"] and results["obama"]["similarity"] > 0.5
    assert not results["biden"]["match"] and results["biden"]["similarity"] < 0.35
    assert results["garbage"]["error"] == "not_an_image"
    changed = {t for t, n in table_counts().items() if n != before[t]}
    assert changed <= {"audit_event", "audit_chainhead"}


def test_compare_multipart_and_no_face_in_target(tenant, client_for):
    from django.core.files.uploadedfile import SimpleUploadedFile
    client = client_for(tenant, ("searcher",))
    response = client.post("/v1/compare", {
        "target": SimpleUploadedFile("t.jpg", photo(PROBES / "johnsnow_test1.jpg")),
        "reference": [SimpleUploadedFile("kit.jpeg", photo(KNOWN / "enroll/kit_harington/john1.jpeg"))],
    }, format="multipart")
    assert response.status_code == 200, response.content
    assert response.json()["comparisons"][0]["match"] is True
    no_face = client.post("/v1/compare", {
        "target": SimpleUploadedFile("empty.jpg", photo(KNOWN.parent / "group-photos/017_0.jpg")),
        "reference": [SimpleUploadedFile("kit.jpeg", photo(KNOWN / "enroll/kit_harington/john1.jpeg"))],
    }, format="multipart")
    assert no_face.status_code == 422 and no_face.json()["error"]["code"] == "no_face_detected"


def _all_table_text() -> str:
    """Every row of every table as text (as the superuser: past row-level security)."""
    import os

    import psycopg
    with psycopg.connect(os.environ["DATABASE_SUPERUSER_URL"]) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")]
        return "\n".join(str(row[0]) for t in tables
                         for row in conn.execute(f'SELECT t::text FROM "{t}" t'))  # noqa: S608


@pytest.mark.django_db(transaction=False)
def test_delete_by_subject_leaves_no_trace(committed_db, make_tenant, make_key):
    """After deletion no row, ciphertext or vector of the faces is left in any table."""
    from rest_framework.test import APIClient

    from embeddings.models import Face
    from faceservice.tenancy import tenant_context
    from tests.embeddings.conftest import enroll

    tenant = make_tenant()
    face_ids = enroll(tenant)
    with tenant_context(tenant.id):
        rows = list(Face.objects.filter(tenant_id=tenant.id, subject_id="obama"))
    traces = [bytes(f.embedding_ciphertext).hex() for f in rows]
    vectors = [[float(v) for v in f.search_vector] for f in rows]
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {make_key(tenant, ('admin', 'searcher'))}")
    response = client.post("/v1/faces/delete", {"subject_ids": ["obama"]}, format="json")
    assert response.status_code == 200, response.content
    receipt = response.json()
    assert receipt["faces_deleted"] == len(face_ids["obama"]) == 2 and receipt["assets_deleted"] == 2
    everything = _all_table_text()
    for ciphertext_hex in traces:
        assert ciphertext_hex not in everything
    for vector in vectors:  # pgvector prints floats in full: look for the first three
        assert ",".join(f"{v:g}" for v in vector[:3]) not in everything
    for face_id in face_ids["obama"]:
        assert not Face.objects.filter(id=face_id).exists()
    # Search no longer finds the person; the receipt stays readable; deleting again is zero.
    body = client.post("/v1/search", {"image": b64(PROBES / "obama1.jpg")}, format="json").json()
    assert all(m["subject_id"] != "obama" for m in body["faces"][0]["matches"])
    listed = client.get("/v1/faces", {"subject_id": "obama"}).json()
    assert listed["results"] == []
    everyone = str(client.get("/v1/faces", {"limit": 500}).json())
    assert all(str(face_id) not in everyone for face_id in face_ids["obama"])
    again = client.post("/v1/faces/delete", {"subject_ids": ["obama"]}, format="json").json()
    assert again["faces_deleted"] == 0
    read_back = client.get(f"/v1/receipts/{receipt['receipt_id']}")
    assert read_back.status_code == 200 and read_back.json()["faces_deleted"] == 2
    connection.close()


def test_delete_by_face_and_asset_ids(enrolled, client_for):
    tenant, face_ids = enrolled
    client = client_for(tenant, ("admin",))
    one = client.post("/v1/faces/delete", {"face_ids": [str(face_ids["biden"][0])]}, format="json").json()
    assert one["faces_deleted"] == 1
    by_asset = client.post("/v1/faces/delete", {"asset_ids": ["rose_leslie/img1.jpg"]}, format="json").json()
    assert by_asset["faces_deleted"] == 1 and by_asset["assets_deleted"] == 1
    bad = client.post("/v1/faces/delete", {"face_ids": ["x"], "subject_ids": ["y"]}, format="json")
    assert bad.status_code == 400


def test_foreign_receipt_is_404(enrolled, other_tenant, client_for):
    tenant, _ = enrolled
    receipt = client_for(tenant, ("admin",)).post("/v1/faces/delete", {"subject_ids": ["biden"]},
                                                  format="json").json()
    response = client_for(other_tenant, ("admin",)).get(f"/v1/receipts/{receipt['receipt_id']}")
    assert response.status_code == 404


def test_purge_needs_confirmation_then_shreds_keys(enrolled, client_for):
    from faceservice.tenancy import tenant_context
    from tenants.models import TenantKey
    tenant, face_ids = enrolled
    client = client_for(tenant, ("admin", "searcher"))
    refused = client.post("/v1/faces/purge", {"confirm": "yes"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "confirmation_required"
    receipt = client.post("/v1/faces/purge", {"confirm": "delete all face data"}, format="json").json()
    assert receipt["faces_deleted"] == sum(len(v) for v in face_ids.values())
    assert receipt["keys_destroyed"] == 1
    with tenant_context(tenant.id):
        assert not TenantKey.objects.filter(tenant_id=tenant.id, wrapped_key__isnull=False).exists()
    stats = client_for(tenant, ("auditor",)).get("/v1/stats").json()
    assert stats["faces"] == 0 and stats["assets"] == 0


def test_statistics_count_without_personal_data(enrolled, client_for):
    tenant, face_ids = enrolled
    client_for(tenant, ("searcher",)).post("/v1/search", {"image": b64(PROBES / "obama1.jpg")}, format="json")
    stats = client_for(tenant, ("auditor",)).get("/v1/stats").json()
    assert stats["faces"] == sum(len(v) for v in face_ids.values())
    assert stats["subjects"] == 5 and stats["face_storage_bytes"] > 0
    assert sum(day.get("searches", 0) for day in stats["activity_per_day"].values()) == 1
    assert "obama" not in str(stats)


def test_statistics_count_index_jobs(tenant, client_for):
    """Issue #14: /v1/stats counts the jobs submitted (it looked for an action never written)."""
    response = client_for(tenant, ("indexer",)).post("/v1/index-jobs", {"assets": [
        {"asset_id": "a", "image": {"url": "https://images.example/a.jpg"}}]}, format="json")
    assert response.status_code == 202, response.content
    stats = client_for(tenant, ("auditor",)).get("/v1/stats").json()
    assert sum(day.get("index_jobs", 0) for day in stats["activity_per_day"].values()) == 1


def test_faces_listed_with_the_one_rounding_rule(enrolled, client_for):
    """Issue #14: boxes to 1 decimal, scores and similarities to 4, in listings, search and compare."""
    tenant, _ = enrolled
    client = client_for(tenant, ("admin", "searcher"))
    listed = client.get("/v1/faces", {"limit": 50}).json()["results"]
    searched = client.post("/v1/search", {"image": b64(PROBES / "obama_and_biden.jpg")}, format="json").json()
    reference = {"name": "o", "image": b64(KNOWN / "enroll/obama/obama.jpg")}
    compared = client.post("/v1/compare", {"target": b64(PROBES / "obama1.jpg"), "references": [reference]},
                           format="json").json()
    boxes = [v for face in listed + searched["faces"] for v in face["bbox"]]
    scores = [face["det_score"] for face in listed + searched["faces"]]
    scores += [m["similarity"] for face in searched["faces"] for m in face["matches"]]
    scores += [c["similarity"] for c in compared["comparisons"]]
    assert boxes and all(v == round(v, 1) for v in boxes)
    assert len(scores) > len(listed) and all(v == round(v, 4) for v in scores)
