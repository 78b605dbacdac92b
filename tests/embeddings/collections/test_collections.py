"""Collections over the API with real photos: isolation between collections and tenants, the model a
collection is tied to, and deletion that leaves nothing behind (checked as the database superuser)."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from audit.models import AuditEvent
from embeddings.engine import decode_image
from embeddings.face_engine import face_engine
from embeddings.models import Collection, Face
from embeddings.store import services
from embeddings.store.collections import collection_named
from faceservice.tenancy import tenant_context
from tests.conftest import assert_json_error, count, find, rows_mentioning
from tests.embeddings.conftest import ACTOR, KNOWN, PROBES, photo

pytestmark = pytest.mark.skipif(not KNOWN.is_dir(), reason=f"{KNOWN} is missing")


def enroll_into(tenant, collection: str | None, people=("obama", "biden")) -> dict[str, list]:
    """Index the enrol photos of these people into a collection (None: the default one)."""
    engine = face_engine()
    with tenant_context(tenant.id):
        collection_id = collection_named(tenant.id, collection).id
    face_ids: dict[str, list] = {}
    for person in people:
        for path in sorted((KNOWN / "enroll" / person).iterdir()):
            faces = engine.analyze(decode_image(path.read_bytes())).faces[:1]
            result = services.replace_asset_faces(
                tenant_id=tenant.id, asset_id=f"{person}/{path.name}", subject_id=person, faces=faces,
                model_id=engine.model_id, submitted_at=timezone.now(), actor=ACTOR, collection_id=collection_id)
            face_ids.setdefault(person, []).extend(result.face_ids)
    return face_ids


def upload(probe: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(probe, photo(PROBES / probe), content_type="image/jpeg")


def search(client, probe: str, **fields):
    response = client.post("/v1/search", {"image": upload(probe), **fields}, format="multipart")
    assert response.status_code == 200, response.content
    return response.json()


def test_create_list_describe_and_change_a_collection(tenant, client_for):
    client = client_for(tenant)
    created = client.post("/v1/collections", {"name": "staff", "face_retention_days": 30}, format="json")
    assert created.status_code == 201 and created["Location"] == "/v1/collections/staff"
    assert created.json()["model_id"] == face_engine().model_id and created.json()["face_count"] == 0
    assert_json_error(client.post("/v1/collections", {"name": "staff"}, format="json"), 409, "collection_exists")
    assert_json_error(client.post("/v1/collections", {"name": "no spaces"}, format="json"), 400, "invalid_request")
    faces = sum(len(ids) for ids in enroll_into(tenant, "staff").values())
    listed = client.get("/v1/collections").json()["results"]
    assert [(c["name"], c["face_count"], c["subject_count"]) for c in listed] == [("staff", faces, 2)]
    changed = client.patch("/v1/collections/staff", {"face_retention_days": None}, format="json")
    assert changed.status_code == 200 and changed.json()["face_retention_days"] is None
    assert client.get("/v1/collections/staff").json()["face_count"] == faces
    assert_json_error(client.get("/v1/collections/absent"), 404, "not_found")


def test_collection_retention_sets_the_expiry_of_its_new_faces(tenant, client_for):
    client_for(tenant).post("/v1/collections", {"name": "short", "face_retention_days": 2}, format="json")
    enroll_into(tenant, "short", people=("obama",))
    (face,) = find(Face, tenant_id=tenant.id)[:1]
    assert abs((face.expires_at - face.created_at).total_seconds() - 2 * 86400) < 5


def test_searches_see_only_their_collection(tenant, client_for):
    client = client_for(tenant)
    client.post("/v1/collections", {"name": "vip"}, format="json")
    in_default = enroll_into(tenant, None, people=("obama",))
    in_vip = enroll_into(tenant, "vip", people=("obama", "biden"))
    default_answer = search(client, "obama1.jpg")
    vip_answer = search(client, "obama1.jpg", collection="vip")
    default_ids = {m["face_id"] for m in default_answer["faces"][0]["matches"]}
    vip_ids = {m["face_id"] for m in vip_answer["faces"][0]["matches"]}
    assert default_answer["collection"] == "default" and vip_answer["collection"] == "vip"
    assert default_ids == {str(f) for f in in_default["obama"]}
    assert vip_ids == {str(f) for f in in_vip["obama"]}
    # A face id searches its own collection unless told otherwise.
    by_face = client.post("/v1/search", {"face_id": str(in_vip["obama"][0]), "threshold": 0.0}, format="json")
    assert by_face.json()["collection"] == "vip"
    assert {m["face_id"] for m in by_face.json()["faces"][0]["matches"]} <= {str(f) for fs in in_vip.values()
                                                                              for f in fs}
    listed = client.get("/v1/faces", {"collection": "vip", "subject_id": "obama"}).json()["results"]
    assert {f["id"] for f in listed} == {str(f) for f in in_vip["obama"]}
    assert_json_error(client.post("/v1/search", {"image": upload("obama1.jpg"), "collection": "nope"},
                                  format="multipart"), 404, "not_found")


def test_another_tenants_collection_is_a_404_on_every_route(tenant, other_tenant, client_for):
    client_for(other_tenant).post("/v1/collections", {"name": "theirs"}, format="json")
    enroll_into(other_tenant, "theirs", people=("obama",))
    client = client_for(tenant)
    image = upload("obama1.jpg")
    for response in [
        client.get("/v1/collections/theirs"),
        client.patch("/v1/collections/theirs", {"face_retention_days": 1}, format="json"),
        client.delete("/v1/collections/theirs"),
        client.get("/v1/faces", {"collection": "theirs"}),
        client.get("/v1/subjects", {"collection": "theirs"}),
        client.get("/v1/stats", {"collection": "theirs"}),
        client.post("/v1/search", {"image": image, "collection": "theirs"}, format="multipart"),
        client.post("/v1/search/subjects", {"image": upload("obama1.jpg"), "collection": "theirs"},
                    format="multipart"),
        client.post("/v1/faces/delete", {"collection": "theirs", "subject_ids": ["obama"]}, format="json"),
        client.post("/v1/index-jobs", {"collection": "theirs", "assets": [
            {"asset_id": "a", "image": {"url": "https://example.com/a.jpg"}}]}, format="json"),
    ]:
        assert_json_error(response, 404, "not_found")
    assert client.get("/v1/collections").json()["results"] == []
    assert count(Face, tenant_id=other_tenant.id) == 2


def test_a_collection_of_another_model_refuses_jobs_and_searches(tenant, client_for):
    client = client_for(tenant)
    with tenant_context(tenant.id):
        Collection.objects.create(tenant=tenant, name="old-model", model_id="retired-pack:0001")
    job = client.post("/v1/index-jobs", {"collection": "old-model", "assets": [
        {"asset_id": "a", "image": {"url": "https://example.com/a.jpg"}}]}, format="json")
    assert_json_error(job, 409, "collection_model_mismatch")
    found = client.post("/v1/search", {"image": upload("obama1.jpg"), "collection": "old-model"},
                        format="multipart")
    assert_json_error(found, 409, "collection_model_mismatch")


def test_index_jobs_say_their_collection(tenant, client_for, settings):
    client = client_for(tenant)
    client.post("/v1/collections", {"name": "events"}, format="json")
    settings.INDEX_ALLOW_HTTP_URLS = True
    job = client.post("/v1/index-jobs", {"collection": "events", "assets": [
        {"asset_id": "a", "image": {"url": "https://example.com/a.jpg"}}]}, format="json")
    assert job.status_code == 202 and job.json()["collection"] == "events"
    assert client.get(job["Location"]).json()["collection"] == "events"


def test_deleting_a_collection_leaves_no_residue(committed_db, settings):
    from rest_framework.test import APIClient

    from audit.services import Actor
    from tenants import services as tenant_services

    operator = Actor.operator("tests")
    tenant = tenant_services.create_tenant(name=f"residue-{uuid.uuid4().hex[:10]}", actor=operator)
    key = tenant_services.create_api_key(tenant_id=tenant.id, name="t", roles=["admin"], actor=operator)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key.plaintext}")
    client.post("/v1/collections", {"name": "gone-soon"}, format="json")
    face_ids = enroll_into(tenant, "gone-soon")
    kept = enroll_into(tenant, None, people=("obama",))
    subject, asset = f"subject-{uuid.uuid4().hex}", f"asset-{uuid.uuid4().hex}"
    settings.INDEX_ALLOW_HTTP_URLS = True
    job = client.post("/v1/index-jobs", {"collection": "gone-soon", "assets": [
        {"asset_id": asset, "subject_id": subject, "image": {"url": "https://127.0.0.1:9/none.jpg"}}]},
        format="json").json()
    with tenant_context(tenant.id):
        collection_id = str(collection_named(tenant.id, "gone-soon").id)
    needles = [collection_id, subject, asset, job["id"], *(str(f) for fs in face_ids.values() for f in fs)]
    assert len(rows_mentioning(needles)) >= 5  # the scan finds them while they exist

    receipt = client.delete("/v1/collections/gone-soon")
    assert receipt.status_code == 200, receipt.content
    assert receipt.json()["faces_deleted"] == 4 and receipt.json()["requested"] == {"collection": "gone-soon"}
    assert rows_mentioning(needles) == {}
    assert count(Face, tenant_id=tenant.id) == len(kept["obama"])  # the default collection is untouched
    assert_json_error(client.get("/v1/collections/gone-soon"), 404, "not_found")
    assert client.post("/v1/collections", {"name": "gone-soon"}, format="json").status_code == 201
    deleted = find(AuditEvent, tenant_id=tenant.id, action="faces.deleted")
    assert [str(e.receipt_id) for e in deleted] == [receipt.json()["receipt_id"]]
