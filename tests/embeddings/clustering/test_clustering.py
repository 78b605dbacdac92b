"""People discovery with real photos: the known people of ../shared/faces, indexed without subjects, are
grouped one cluster per person; naming a cluster labels its faces and search answers with the subject;
split and merge; another tenant's ids are 404; a deleted face (ORM or raw SQL) leaves no cluster row."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from audit.models import AuditEvent
from embeddings.clustering import services
from embeddings.clustering.models import Cluster, ClusterFace, ClusteringJob
from embeddings.collections.services import delete_collection
from embeddings.engine import decode_image
from embeddings.face_engine import face_engine
from embeddings.store import services as store
from faceservice.tenancy import tenant_context
from tests.conftest import assert_json_error, count, find
from tests.embeddings.conftest import ACTOR, KNOWN, PROBES, photo

pytestmark = pytest.mark.skipif(not KNOWN.is_dir(), reason=f"{KNOWN} is missing")

# Photos of one person each, by whom (the group photos' faces are indexed too, truth unchecked).
ONE_PERSON = {
    **{f"enroll/{p.parent.name}/{p.name}": p.parent.name for p in sorted((KNOWN / "enroll").glob("*/*"))},
    "probe/alex_lacamoire1.jpg": "alex_lacamoire", "probe/obama1.jpg": "obama",
    "probe/johnsnow_test1.jpg": "kit_harington", "more/obama.jpg": "obama", "more/obama2.jpg": "obama",
    "more/obama3.jpg": "obama", "more/biden.jpg": "biden",
}
GROUP_PHOTOS = ("probe/obama_and_biden.jpg", "probe/kit_with_rose.jpg")
PEOPLE = {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}


def index_without_subjects(tenant, collection_id=None) -> dict[str, str]:
    """Index every face of the photos, with no subject; {face id: person} for the one-person photos."""
    engine = face_engine()
    truth = {}
    for name in [*ONE_PERSON, *GROUP_PHOTOS]:
        faces = engine.analyze(decode_image((KNOWN / name).read_bytes())).faces
        faces = faces if name in GROUP_PHOTOS else faces[:1]
        indexed = store.replace_asset_faces(tenant_id=tenant.id, asset_id=name, faces=faces,
                                            model_id=engine.model_id, submitted_at=timezone.now(), actor=ACTOR,
                                            collection_id=collection_id)
        if name in ONE_PERSON:
            truth[str(indexed.face_ids[0])] = ONE_PERSON[name]
    return truth


@pytest.fixture
def discovered(tenant, client_for):
    """A tenant whose known-people faces were grouped by a finished job (through the API and the task)."""
    truth = index_without_subjects(tenant)
    client = client_for(tenant, roles=("indexer",))
    started = client.post("/v1/clustering-jobs", {}, format="json")
    assert started.status_code == 202, started.content
    job = started.json()
    assert job["state"] == "queued" and started["Location"] == f"/v1/clustering-jobs/{job['id']}"
    services.run_clustering_job(tenant_id=tenant.id, job_id=job["id"])  # what the worker's task runs
    return tenant, client, job["id"], truth


def clusters_by_person(client, job_id, truth) -> dict[str, dict]:
    """{person: cluster} of the job, checking that each cluster holds one person's known faces."""
    listed = client.get(f"/v1/clustering-jobs/{job_id}/clusters").json()["results"]
    found = {}
    for cluster in listed:
        faces = client.get(f"/v1/clusters/{cluster['id']}").json()["faces"]
        people = {truth[f["face_id"]] for f in faces if f["face_id"] in truth}
        assert len(people) == 1, f"a cluster mixes {people}"
        found[people.pop()] = {**cluster, "face_ids": [f["face_id"] for f in faces]}
    return found


def search_subject(client, probe: str) -> str | None:
    image = SimpleUploadedFile(probe, photo(PROBES / probe), content_type="image/jpeg")
    matches = client.post("/v1/search", {"image": image, "faces": "largest"}, format="multipart"
                          ).json()["faces"][0]["matches"]
    return matches[0]["subject_id"] if matches else None


def test_the_known_people_are_grouped_one_cluster_each(discovered):
    tenant, client, job_id, truth = discovered
    job = client.get(f"/v1/clustering-jobs/{job_id}").json()
    assert job["state"] == "succeeded" and job["clusters_found"] == 5
    assert job["faces_considered"] == len(truth) + 5  # and the group photos' five faces
    by_person = clusters_by_person(client, job_id, truth)
    assert set(by_person) == PEOPLE
    for person, cluster in by_person.items():
        known = {face for face, whom in truth.items() if whom == person}
        assert known <= set(cluster["face_ids"]), f"{person}'s faces are split"
        assert cluster["face_count"] == len(cluster["face_ids"])
        assert 1 <= len(cluster["representative_face_ids"]) <= 3
        assert set(cluster["representative_face_ids"]) <= set(cluster["face_ids"])
    sizes = [c["face_count"] for c in client.get(f"/v1/clustering-jobs/{job_id}/clusters").json()["results"]]
    assert sizes == sorted(sizes, reverse=True)
    assert [j["id"] for j in client.get("/v1/clustering-jobs").json()["results"]] == [job_id]
    actions = [e.action for e in find(AuditEvent, tenant_id=tenant.id)]
    assert {"clustering_job.started", "clustering_job.finished"} <= set(actions)


def test_running_the_job_again_changes_nothing(discovered):
    tenant, _client, job_id, _truth = discovered
    before = sorted(count(ClusterFace, cluster_id=c.id) for c in find(Cluster, job_id=job_id))
    assert services.run_clustering_job(tenant_id=tenant.id, job_id=job_id) is None  # finished: left alone
    # A worker that died holding the job: its lease runs out and the job is run again, from clean.
    with tenant_context(tenant.id):
        ClusteringJob.objects.filter(id=job_id).update(state="running", lease_expires_at=timezone.now())
    again = services.run_clustering_job(tenant_id=tenant.id, job_id=job_id)
    assert again.state == "succeeded" and again.attempts == 2
    assert sorted(count(ClusterFace, cluster_id=c.id) for c in find(Cluster, job_id=job_id)) == before


def test_the_sweeper_sends_again_the_jobs_whose_message_or_worker_was_lost(tenant):
    job = services.start_clustering_job(tenant_id=tenant.id, actor=ACTOR)
    assert services.sweep_clustering_jobs() == 0  # just queued: its message is on the way
    later = timezone.now() + timedelta(seconds=services.RESEND_AFTER_SECONDS + 1)
    assert services.sweep_clustering_jobs(now=later) == 1
    services.run_clustering_job(tenant_id=tenant.id, job_id=job.id)  # an empty collection: nothing to group
    assert find(ClusteringJob, id=job.id)[0].state == "succeeded"
    assert services.sweep_clustering_jobs(now=later) == 0


def test_naming_a_cluster_labels_its_faces_and_search_answers_with_the_subject(discovered, settings, client_for):
    tenant, client, job_id, truth = discovered
    searcher = client_for(tenant, roles=("searcher",))
    by_person = clusters_by_person(client, job_id, truth)
    assert search_subject(searcher, "obama1.jpg") is None
    obama = by_person["obama"]
    settings.SUBJECT_MAX_FACES = obama["face_count"] - 1
    refused = client.post(f"/v1/clusters/{obama['id']}/name", {"subject_id": "barack"}, format="json")
    assert_json_error(refused, 422, "subject_face_limit")
    settings.SUBJECT_MAX_FACES = 100
    named = client.post(f"/v1/clusters/{obama['id']}/name", {"subject_id": "barack"}, format="json").json()
    assert named == {"cluster_id": obama["id"], "subject_id": "barack", "faces_named": obama["face_count"],
                     "faces_skipped": 0}
    assert search_subject(searcher, "obama1.jpg") == "barack"  # at once: the gallery generation moved
    described = client.get("/v1/subjects/describe", {"subject_id": "barack"}).json()
    assert {f["id"] for f in described["faces"]} == set(obama["face_ids"])
    again = client.post(f"/v1/clusters/{obama['id']}/name", {"subject_id": "obama"}, format="json")
    assert_json_error(again, 409, "cluster_named")
    assert_json_error(client.post(f"/v1/clusters/{obama['id']}/split", {}, format="json"), 409, "cluster_named")
    assert "cluster.named" in {e.action for e in find(AuditEvent, tenant_id=tenant.id)}


def test_split_and_merge(discovered):
    tenant, client, job_id, truth = discovered
    obama = clusters_by_person(client, job_id, truth)["obama"]
    moved = obama["face_ids"][:2]
    split = client.post(f"/v1/clusters/{obama['id']}/split", {"face_groups": [moved]}, format="json").json()
    assert next(c["id"] for c in split["clusters"]) == obama["id"]
    assert [c["face_count"] for c in split["clusters"]] == [obama["face_count"] - 2, 2]
    new_id = split["clusters"][1]["id"]
    merged = client.post("/v1/clusters/merge", {"cluster_ids": [new_id], "into": obama["id"]}, format="json")
    assert merged.json()["face_count"] == obama["face_count"]
    assert client.get(f"/v1/clusters/{new_id}").status_code == 404
    strict = client.post(f"/v1/clusters/{obama['id']}/split", {"threshold": 0.99}, format="json").json()
    assert sum(c["face_count"] for c in strict["clusters"]) == obama["face_count"]
    assert len(strict["clusters"]) > 1
    foreign = client.post(f"/v1/clusters/{obama['id']}/split", {"face_groups": [[truth_face(truth, "biden")]]},
                          format="json")
    assert_json_error(foreign, 400, "invalid_face_groups")
    actions = {e.action for e in find(AuditEvent, tenant_id=tenant.id)}
    assert {"cluster.split", "cluster.merged"} <= actions


def truth_face(truth, person) -> str:
    return next(face for face, whom in truth.items() if whom == person)


def test_another_tenants_job_and_clusters_are_404(discovered, other_tenant, client_for):
    _tenant, client, job_id, _truth = discovered
    cluster_id = client.get(f"/v1/clustering-jobs/{job_id}/clusters").json()["results"][0]["id"]
    stranger = client_for(other_tenant, roles=("admin",))
    for response in (
        stranger.get(f"/v1/clustering-jobs/{job_id}"),
        stranger.get(f"/v1/clustering-jobs/{job_id}/clusters"),
        stranger.get(f"/v1/clusters/{cluster_id}"),
        stranger.post(f"/v1/clusters/{cluster_id}/name", {"subject_id": "x"}, format="json"),
        stranger.post(f"/v1/clusters/{cluster_id}/split", {}, format="json"),
        stranger.post("/v1/clusters/merge", {"cluster_ids": [cluster_id], "into": cluster_id}, format="json"),
    ):
        assert_json_error(response, 404, "not_found")
    assert stranger.get("/v1/clustering-jobs").json()["results"] == []
    assert client.get(f"/v1/clusters/{cluster_id}").status_code == 200


def test_deleted_faces_leave_no_cluster_row(discovered):
    tenant, client, job_id, truth = discovered
    obama = clusters_by_person(client, job_id, truth)["obama"]
    gone = obama["face_ids"][0]
    receipt = store.delete_faces(tenant_id=tenant.id, actor=ACTOR, face_ids=[gone])
    assert receipt.faces_deleted == 1 and count(ClusterFace, face_id=gone) == 0  # the ORM's delete
    # Re-indexing an asset deletes its old faces with raw SQL: the database cascade removes their rows.
    asset = "probe/johnsnow_test1.jpg"
    old = [f for f, whom in truth.items() if whom == "kit_harington" and count(ClusterFace, face_id=f)]
    store.replace_asset_faces(tenant_id=tenant.id, asset_id=asset, faces=[], model_id=face_engine().model_id,
                              submitted_at=timezone.now(), actor=ACTOR)
    assert count(ClusterFace, job_id=job_id) == sum(
        c["face_count"] for c in client.get(f"/v1/clustering-jobs/{job_id}/clusters").json()["results"])
    assert sum(count(ClusterFace, face_id=f) for f in old) == len(old) - 1
    after = client.get(f"/v1/clusters/{obama['id']}").json()
    assert after["face_count"] == obama["face_count"] - 1 and gone not in after["representative_face_ids"]


def test_deleting_the_collection_deletes_its_clustering_jobs(discovered):
    tenant, _client, job_id, _truth = discovered
    assert count(ClusterFace, job_id=job_id) > 0
    delete_collection(tenant_id=tenant.id, name="default", actor=ACTOR)
    for model in (ClusteringJob, Cluster, ClusterFace):
        assert count(model, tenant_id=tenant.id) == 0, model.__name__


def test_webhook_when_the_job_ends(tenant, webhook_endpoint_for):
    from tenants.models import WebhookDelivery

    index_without_subjects(tenant)
    endpoint = webhook_endpoint_for(tenant, [services.CLUSTERING_FINISHED])
    job = services.start_clustering_job(tenant_id=tenant.id, actor=ACTOR)
    services.run_clustering_job(tenant_id=tenant.id, job_id=job.id)
    delivery = find(WebhookDelivery, endpoint_id=endpoint.id)[0]
    assert delivery.event_type == "clustering.finished"
    assert delivery.payload["data"]["clusters_found"] == 5
    assert delivery.payload["data"]["state"] == "succeeded"


@pytest.fixture
def webhook_endpoint_for(settings):
    from tenants.webhooks import services as webhooks

    settings.WEBHOOK_ALLOW_HTTP = True
    settings.FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]

    def make(tenant, events):
        return webhooks.create_endpoint(tenant_id=tenant.id, url="http://127.0.0.1:9/hook", events=events,
                                        actor=ACTOR).endpoint

    return make


def test_faces_under_two_key_versions_are_grouped_together(tenant, client_for):
    # Half-way through a key rotation a collection holds templates under two rotations R: they are
    # re-keyed to the newest before grouping, or one person would split by key version.
    from embeddings.store.models import Face
    from tenants import data_keys

    truth = index_without_subjects(tenant)
    data_keys.start_key_rotation(tenant_id=tenant.id, actor=ACTOR)
    store.reencrypt_batch(tenant_id=tenant.id, batch_size=len(truth) // 2, actor=ACTOR)
    with tenant_context(tenant.id):
        assert set(Face.objects.filter(tenant_id=tenant.id).values_list("key_version", flat=True)) == {1, 2}
    client = client_for(tenant, roles=("admin",))
    job = services.start_clustering_job(tenant_id=tenant.id, actor=ACTOR)
    services.run_clustering_job(tenant_id=tenant.id, job_id=job.id)
    assert set(clusters_by_person(client, job.id, truth)) == PEOPLE
