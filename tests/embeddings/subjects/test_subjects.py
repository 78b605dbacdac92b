"""Subjects as first-class, with real photos: list, describe, rename, merge, move faces between subjects
(searches answer with the new labels at once), the per-subject face limit, person search and verify."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from audit.models import AuditEvent
from tests.conftest import assert_json_error, count, find
from tests.embeddings.conftest import KNOWN, PROBES, photo

pytestmark = pytest.mark.skipif(not KNOWN.is_dir(), reason=f"{KNOWN} is missing")


def upload(probe: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(probe, photo(PROBES / probe), content_type="image/jpeg")


def best_subject(client, probe: str) -> str | None:
    answer = client.post("/v1/search", {"image": upload(probe), "faces": "largest"}, format="multipart").json()
    matches = answer["faces"][0]["matches"]
    return matches[0]["subject_id"] if matches else None


@pytest.fixture
def people(enrolled, client_for):
    tenant, face_ids = enrolled
    return tenant, face_ids, client_for(tenant, roles=("admin",))


def test_subjects_are_listed_with_counts_and_described(people):
    _tenant, face_ids, client = people
    listed = client.get("/v1/subjects", {"limit": 2}).json()
    assert [s["subject_id"] for s in listed["results"]] == sorted(face_ids)[:2]
    following = client.get(listed["next"]).json()["results"]
    assert [s["subject_id"] for s in following] == sorted(face_ids)[2:4]
    counts = {s["subject_id"]: s["face_count"] for s in listed["results"] + following}
    assert all(counts[name] == len(face_ids[name]) for name in counts)
    described = client.get("/v1/subjects/describe", {"subject_id": "obama"}).json()
    assert described["face_count"] == len(face_ids["obama"])
    assert {f["id"] for f in described["faces"]} == {str(f) for f in face_ids["obama"]}
    assert "embedding" not in str(described)
    assert_json_error(client.get("/v1/subjects/describe", {"subject_id": "nobody"}), 404, "not_found")


def test_rename_and_merge_change_search_answers_at_once(people):
    tenant, face_ids, client = people
    assert best_subject(client, "obama1.jpg") == "obama"
    renamed = client.post("/v1/subjects/rename", {"subject_id": "obama", "new_subject_id": "barack"},
                          format="json")
    assert renamed.json() == {"subject_id": "barack", "face_count": len(face_ids["obama"])}
    assert best_subject(client, "obama1.jpg") == "barack"
    refused = client.post("/v1/subjects/rename", {"subject_id": "barack", "new_subject_id": "biden"}, format="json")
    assert_json_error(refused, 409, "subject_exists")
    merged = client.post("/v1/subjects/merge", {"subject_ids": ["biden", "barack"], "into": "presidents"},
                         format="json")
    assert merged.json()["face_count"] == len(face_ids["obama"]) + len(face_ids["biden"])
    assert best_subject(client, "obama1.jpg") == "presidents"
    assert client.get("/v1/subjects/describe", {"subject_id": "biden"}).status_code == 404
    actions = {e.action for e in find(AuditEvent, tenant_id=tenant.id)}
    assert {"subject.renamed", "subject.merged"} <= actions


def test_associating_a_face_moves_it_to_another_subject(people):
    tenant, face_ids, client = people
    moved = [str(f) for f in face_ids["obama"]]
    answer = client.post("/v1/faces/associate", {"subject_id": "kit_harington", "face_ids": [*moved, moved[0]]},
                         format="json").json()
    assert answer["changed"] == moved and answer["unchanged"] == []
    assert best_subject(client, "obama1.jpg") == "kit_harington"  # the search sees it at once
    taken_off = client.post("/v1/faces/disassociate", {"subject_id": "kit_harington",
                                                       "face_ids": [*moved, str(face_ids["biden"][0])]},
                            format="json").json()
    assert taken_off["changed"] == moved
    assert taken_off["unchanged"] == [{"face_id": str(face_ids["biden"][0]), "reason": "not_associated"}]
    assert best_subject(client, "obama1.jpg") is None  # indexed still, without a subject
    matches = client.post("/v1/search", {"image": upload("obama1.jpg"), "faces": "largest"},
                          format="multipart").json()["faces"][0]["matches"]
    assert matches and matches[0]["face_id"] in moved
    unknown = client.post("/v1/faces/associate", {"subject_id": "x", "face_ids": [
        "00000000-0000-0000-0000-000000000001"]}, format="json").json()
    assert unknown["unchanged"][0]["reason"] == "not_found"
    assert {"faces.associated", "faces.disassociated"} <= {e.action for e in find(AuditEvent, tenant_id=tenant.id)}


def test_a_subject_holds_at_most_the_face_limit(people, settings):
    _tenant, face_ids, client = people
    settings.SUBJECT_MAX_FACES = len(face_ids["obama"]) + 1
    too_many = client.post("/v1/subjects/merge", {"subject_ids": ["biden"], "into": "obama"}, format="json")
    assert_json_error(too_many, 422, "subject_face_limit")
    fits = client.post("/v1/faces/associate", {"subject_id": "obama", "face_ids": [str(face_ids["biden"][0])]},
                       format="json")
    assert fits.status_code == 200 and fits.json()["changed"] == [str(face_ids["biden"][0])]
    full = client.post("/v1/faces/associate", {"subject_id": "obama", "face_ids": [str(face_ids["biden"][1])]},
                       format="json")
    assert_json_error(full, 422, "subject_face_limit")


def test_person_search_ranks_subjects(people):
    tenant, _face_ids, client = people
    answer = client.post("/v1/search/subjects", {"image": upload("obama_and_biden.jpg")}, format="multipart")
    assert answer.status_code == 200, answer.content
    best = {face["subjects"][0]["subject_id"] for face in answer.json()["faces"] if face["subjects"]}
    assert best == {"obama", "biden"}
    for face in answer.json()["faces"]:
        ids = [s["subject_id"] for s in face["subjects"]]
        assert len(ids) == len(set(ids))  # one entry per person
    assert count(AuditEvent, tenant_id=tenant.id, action="subjects.searched") == 1


def test_verify_against_a_stored_person(people):
    _tenant, face_ids, client = people
    same = client.post("/v1/verify", {"image": upload("obama1.jpg"), "subject_id": "obama"}, format="multipart")
    assert same.status_code == 200, same.content
    assert same.json()["match"] is True and same.json()["faces_compared"] == len(face_ids["obama"])
    other = client.post("/v1/verify", {"image": upload("obama1.jpg"), "subject_id": "biden"}, format="multipart")
    assert other.json()["match"] is False and other.json()["score"] < same.json()["score"]
    missing = client.post("/v1/verify", {"image": upload("obama1.jpg"), "subject_id": "nobody"}, format="multipart")
    assert_json_error(missing, 404, "not_found")
