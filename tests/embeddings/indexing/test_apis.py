"""The index-job API: submit, idempotency, status, per-asset results, list, cancel, faces."""

from __future__ import annotations

import base64

import pytest

from embeddings.indexing import claims as job_claims
from embeddings.models import IndexJob, IndexJobAsset
from tests.conftest import FACES_DIR, count, find
from tests.embeddings.indexing.conftest import complete, fake_faces

PHOTO = FACES_DIR / "known-people" / "enroll" / "obama" / "obama.jpg"


def body(*assets, **extra):
    return {"assets": list(assets), **extra}


def url_asset(asset_id: str, url: str = "https://images.example/a.jpg", **extra) -> dict:
    return {"asset_id": asset_id, "image": {"url": url}, **extra}


@pytest.fixture
def indexer(tenant, client_for):
    return client_for(tenant, roles=("indexer",))


def post_job(client, payload, **headers):
    return client.post("/v1/index-jobs", payload, format="json", **headers)


def test_submit_answers_202_with_the_job_and_its_status_url(indexer, tenant, published):
    response = post_job(indexer, body(url_asset("a", subject_id="alice"),
                                      {"asset_id": "b", "image": {"s3": {"bucket": "photos", "key": "b.jpg"}}},
                                      options={"max_faces": 3, "min_face_size": 40, "min_det_score": 0.6}))
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["state"] == "queued" and job["counts"]["assets_total"] == 2 and job["progress"] == 0
    # subject_faces (issue #14): with a subject id, only the largest face by default.
    assert job["options"] == {"max_faces": 3, "min_face_size": 40.0, "min_det_score": 0.6,
                              "subject_faces": "largest", "quality_filter": "AUTO"}
    assert response["Location"] == job["status_url"] == f"/v1/index-jobs/{job['id']}"
    status = indexer.get(job["status_url"]).json()
    assert status["id"] == job["id"] and status["counts"]["assets_pending"] == 2
    results = indexer.get(job["results_url"]).json()["results"]
    assert [(r["asset_id"], r["subject_id"], r["source"]) for r in results] == [
        ("a", "alice", {"kind": "url"}), ("b", None, {"kind": "s3"})]


def test_progress_and_per_asset_results_follow_the_work(indexer, tenant, published):
    job_id = post_job(indexer, body(url_asset("a"), url_asset("b"))).json()["id"]
    row = find(IndexJobAsset, job_id=job_id)[0]
    claim = job_claims.claim_asset(tenant_id=tenant.id, job_asset_id=row.id)
    complete(claim, faces=fake_faces(2))
    status = indexer.get(f"/v1/index-jobs/{job_id}").json()
    assert status["state"] == "running" and status["progress"] == 0.5
    assert status["counts"]["faces_indexed"] == 2 and status["counts"]["assets_done"] == 1
    done = indexer.get(f"/v1/index-jobs/{job_id}/assets?state=succeeded").json()["results"]
    assert len(done) == 1 and len(done[0]["faces"]) == 2 and done[0]["error"] is None
    assert set(done[0]["faces"][0]) == {"face_id", "bbox", "det_score", "quality", "pose"}  # never an embedding
    assert done[0]["source"] == {"kind": "url", "host": "images.example"}


def test_idempotency_key_returns_the_same_job(indexer, tenant, published):
    payload = body(url_asset("a"))
    first = post_job(indexer, payload, HTTP_IDEMPOTENCY_KEY="order-42")
    again = post_job(indexer, payload, HTTP_IDEMPOTENCY_KEY="order-42")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    assert count(IndexJob, tenant_id=tenant.id) == 1
    other = post_job(indexer, body(url_asset("b")), HTTP_IDEMPOTENCY_KEY="order-42")
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert post_job(indexer, payload).json()["id"] != first.json()["id"]  # no key: a new job
    bad = post_job(indexer, payload, HTTP_IDEMPOTENCY_KEY="has spaces")
    assert bad.status_code == 400


def test_idempotency_keys_are_per_tenant(tenant, other_tenant, client_for, published):
    mine = post_job(client_for(tenant, roles=("indexer",)), body(url_asset("a")), HTTP_IDEMPOTENCY_KEY="k1")
    theirs = post_job(client_for(other_tenant, roles=("indexer",)), body(url_asset("a")),
                      HTTP_IDEMPOTENCY_KEY="k1")
    assert theirs.status_code == 202 and theirs.json()["id"] != mine.json()["id"]


@pytest.mark.parametrize("payload, where", [
    (body(), "assets"),
    (body(url_asset("a"), url_asset("a")), "assets"),
    (body({"asset_id": "a", "image": {}}), "assets"),
    (body({"asset_id": "a", "image": {"url": "https://x.example/a.jpg", "base64": "AAAA"}}), "assets"),
    (body({"asset_id": "a", "image": {"base64": "not base64!"}}), "assets"),
    (body(url_asset("a"), options={"min_det_score": 2}), "options"),
    (body(url_asset("a"), options={"max_faces": 0}), "options"),
    (body(url_asset("a" * 256)), "assets"),
])
def test_invalid_submissions_are_refused_with_details(indexer, payload, where, published):
    response = post_job(indexer, payload)
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == "invalid_request" and where in error["details"]


def test_batch_limit_and_https_only(indexer, settings, published):
    settings.INDEX_JOB_MAX_ASSETS = 2
    response = post_job(indexer, body(url_asset("a"), url_asset("b"), url_asset("c")))
    assert response.status_code == 400 and "at most 2" in str(response.json())
    settings.INDEX_ALLOW_HTTP_URLS = False
    response = post_job(indexer, body(url_asset("a", url="http://images.example/a.jpg")))
    assert response.status_code == 400 and "https" in str(response.json())


def test_inline_images_are_accepted_and_sealed(indexer, tenant, published):
    data = PHOTO.read_bytes()
    response = post_job(indexer, body({"asset_id": "inline", "image": {"base64": base64.b64encode(data).decode()}}))
    assert response.status_code == 202
    results = indexer.get(response.json()["results_url"]).json()["results"]
    assert results[0]["source"] == {"kind": "inline"}


def test_a_foreign_job_is_404_exactly_like_a_missing_one(tenant, other_tenant, client_for, published):
    theirs = post_job(client_for(other_tenant, roles=("indexer",)), body(url_asset("a"))).json()["id"]
    mine = client_for(tenant, roles=("admin",))
    missing = "00000000-0000-4000-8000-000000000000"
    for path in ("", "/assets"):
        foreign, absent = mine.get(f"/v1/index-jobs/{theirs}{path}"), mine.get(f"/v1/index-jobs/{missing}{path}")
        assert foreign.status_code == absent.status_code == 404
        assert foreign.json()["error"]["code"] == absent.json()["error"]["code"] == "not_found"
        assert foreign.json()["error"]["message"] == absent.json()["error"]["message"]
    assert mine.post(f"/v1/index-jobs/{theirs}/cancel").status_code == 404
    assert find(IndexJob, id=theirs)[0].state != "cancelled"


def test_cancel_through_the_api(indexer, tenant, published):
    job_id = post_job(indexer, body(url_asset("a"), url_asset("b"))).json()["id"]
    response = indexer.post(f"/v1/index-jobs/{job_id}/cancel")
    assert response.status_code == 200 and response.json()["state"] == "cancelled"
    assert response.json()["counts"]["assets_cancelled"] == 2 and response.json()["progress"] == 1.0
    assert indexer.post(f"/v1/index-jobs/{job_id}/cancel").status_code == 200  # idempotent
    done_id = post_job(indexer, body(url_asset("c"))).json()["id"]
    row = find(IndexJobAsset, job_id=done_id)[0]
    complete(job_claims.claim_asset(tenant_id=tenant.id, job_asset_id=row.id))
    refused = indexer.post(f"/v1/index-jobs/{done_id}/cancel")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "job_finished"


def test_list_jobs_newest_first_with_filters_and_cursor(indexer, tenant, published):
    ids = [post_job(indexer, body(url_asset(f"a{i}"))).json()["id"] for i in range(3)]
    indexer.post(f"/v1/index-jobs/{ids[0]}/cancel")
    page = indexer.get("/v1/index-jobs?limit=2").json()
    assert [job["id"] for job in page["results"]] == ids[::-1][:2] and page["next"]
    rest = indexer.get(page["next"]).json()
    assert [job["id"] for job in rest["results"]] == [ids[0]]
    cancelled = indexer.get("/v1/index-jobs?state=cancelled").json()["results"]
    assert [job["id"] for job in cancelled] == [ids[0]]
    assert indexer.get("/v1/index-jobs?state=nonsense").status_code == 400


def test_faces_of_an_asset_or_subject_are_listed_without_embeddings(tenant, client_for, published):
    indexer = client_for(tenant, roles=("indexer",))
    job_id = post_job(indexer, body(url_asset("photos/2024/a.jpg", subject_id="alice"), url_asset("b"))).json()["id"]
    for row in find(IndexJobAsset, job_id=job_id):
        complete(job_claims.claim_asset(tenant_id=tenant.id, job_asset_id=row.id), faces=fake_faces(2))
    searcher = client_for(tenant, roles=("searcher",))
    by_asset = searcher.get("/v1/faces", {"asset_id": "photos/2024/a.jpg"})
    assert by_asset.status_code == 200
    faces = by_asset.json()["results"]
    assert len(faces) == 2 and {f["asset_id"] for f in faces} == {"photos/2024/a.jpg"}
    assert set(faces[0]) == {"id", "asset_id", "subject_id", "bbox", "det_score", "quality", "pose", "model_id",
                             "job_id", "created_at", "expires_at"}
    by_subject = searcher.get("/v1/faces", {"subject_id": "alice"}).json()["results"]
    assert {f["id"] for f in by_subject} == {f["id"] for f in faces}
    assert client_for(tenant, roles=("comparer",)).get("/v1/faces").status_code == 403


def test_faces_of_another_tenant_are_not_listed(tenant, other_tenant, client_for, published):
    theirs = client_for(other_tenant, roles=("indexer",))
    job_id = post_job(theirs, body(url_asset("shared-name"))).json()["id"]
    row = find(IndexJobAsset, job_id=job_id)[0]
    complete(job_claims.claim_asset(tenant_id=other_tenant.id, job_asset_id=row.id))
    mine = client_for(tenant, roles=("searcher",)).get("/v1/faces", {"asset_id": "shared-name"})
    assert mine.json()["results"] == []


def test_without_the_face_models_a_job_is_refused_at_submission(indexer, tenant, settings, published):
    """Issue #14: 503 models_unavailable at once, not a 202 whose assets then sit in retry."""
    settings.FACE_MODEL_PACK = "no-such-pack"
    response = post_job(indexer, body(url_asset("a")))
    assert response.status_code == 503, response.content
    error = response.json()["error"]
    assert error["code"] == "models_unavailable" and "no-such-pack" not in response.content.decode()
    assert count(IndexJob, tenant_id=tenant.id) == 0 and published == []


def test_subject_faces_option_is_validated(indexer, published):
    refused = post_job(indexer, body(url_asset("a", subject_id="s"), options={"subject_faces": "most"}))
    assert refused.status_code == 400 and "subject_faces" in str(refused.json()["error"]["details"])
    accepted = post_job(indexer, body(url_asset("a", subject_id="s"), options={"subject_faces": "all"}))
    assert accepted.status_code == 202 and accepted.json()["options"]["subject_faces"] == "all"
