"""The Python client against the real service (a runserver process on the committed test database)."""

from __future__ import annotations

import base64
import json
import time
import uuid

import pytest
from facesearch import (
    APIError,
    AuthenticationFailed,
    Client,
    DeletionTimeout,
    InvalidRequest,
    JobTimeout,
    NotFound,
    PermissionDenied,
    RateLimited,
)
from standardwebhooks import Webhook

from tests.client.conftest import GROUPS, KNOWN, running_server, running_worker
from tests.conftest import LocalServer

OBAMA = KNOWN / "enroll/obama/obama.jpg"
OBAMA2 = KNOWN / "more/obama2.jpg"
BIDEN = KNOWN / "enroll/biden/biden.jpg"


def test_errors_carry_the_api_code_status_and_request_id(server, new_key):
    key = new_key()
    with Client(server, key) as fs:
        with pytest.raises(NotFound) as missing:
            fs.get_index_job(str(uuid.uuid4()))
        with pytest.raises(InvalidRequest) as invalid:
            fs.search(OBAMA, top_k=0)
    assert (missing.value.status, missing.value.code) == (404, "not_found")
    assert missing.value.request_id and missing.value.request_id in str(missing.value)
    assert invalid.value.code == "invalid_request" and "top_k" in invalid.value.details

    wrong = key[:-4] + "AAAA"
    with Client(server, wrong) as fs, pytest.raises(AuthenticationFailed) as refused:
        fs.get_tenant()
    assert (refused.value.status, refused.value.code) == (401, "invalid_api_key")
    assert wrong not in str(refused.value) and wrong not in repr(fs)

    with Client(server, new_key(roles=("comparer",))) as fs, pytest.raises(PermissionDenied) as forbidden:
        fs.get_stats()
    assert forbidden.value.code == "forbidden" and isinstance(forbidden.value, APIError)


def test_iterators_follow_every_page(server, new_key):
    with Client(server, new_key(roles=("admin",))) as fs:
        made = [fs.create_api_key(name=f"ci-{i}", roles=["searcher"]) for i in range(3)]
        assert all(issued["key"].startswith("fsk_") for issued in made)
        fs.revoke_api_key(made[0]["id"])
        listed = list(fs.iter_api_keys(limit=1))  # one key a page: four pages
    assert len(listed) == 4 and len({key["id"] for key in listed}) == 4
    assert {key["id"] for key in listed} >= {issued["id"] for issued in made}
    revoked = next(key for key in listed if key["id"] == made[0]["id"])
    assert revoked["revoked_at"] is not None


def test_search_and_compare_take_paths_bytes_files_and_json_sources(server, new_key):
    with Client(server, new_key()) as fs:
        by_path = fs.compare(OBAMA, [OBAMA2, BIDEN])
        with open(OBAMA, "rb") as target:
            by_file = fs.compare(target, {"same": OBAMA2.read_bytes(),
                                          "other": {"base64": base64.b64encode(BIDEN.read_bytes()).decode()}})
        found = fs.search(KNOWN / "probe/obama_and_biden.jpg", top_k=3)
        found_json = fs.search({"base64": base64.b64encode(OBAMA.read_bytes()).decode()}, faces="largest")
        with pytest.raises(ValueError, match="exactly one"):
            fs.search()
    assert [(c["name"], c["match"]) for c in by_path["comparisons"]] == [("obama2.jpg", True), ("biden.jpg", False)]
    assert [(c["name"], c["match"]) for c in by_file["comparisons"]] == [("same", True), ("other", False)]
    assert len(found["faces"]) >= 2 and all(face["matches"] == [] for face in found["faces"])  # nothing indexed
    assert len(found_json["faces"]) == 1


def test_tenant_deletions_receipts_and_the_audit_log(server, new_key):
    with Client(server, new_key()) as fs:
        assert fs.update_tenant(face_retention_days=30)["face_retention_days"] == 30
        assert fs.get_tenant()["face_retention_days"] == 30
        receipt = fs.delete_faces(subject_ids=["nobody"])
        assert receipt["faces_deleted"] == 0
        assert fs.get_receipt(receipt["receipt_id"])["requested"] == {"subject_ids": ["nobody"]}
        with pytest.raises(InvalidRequest) as unconfirmed:
            fs.purge_faces(confirm="yes")
        assert unconfirmed.value.code == "confirmation_required"
        assert isinstance(fs.get_stats(), dict)
        events = list(fs.iter_audit_events(limit=1))
        exported = b"".join(fs.export_audit_events("jsonl"))
        csv_head = next(fs.export_audit_events("csv", action="tenant.*"))
        assert fs.ready()
    lines = [json.loads(line) for line in exported.decode().splitlines()]
    assert len(events) >= 3  # the tenant update, the deletion, the stats read...: one page each
    assert {event["id"] for event in events} <= {event["id"] for event in lines}  # reading the log is audited too
    assert csv_head.startswith(b"id,") or b"," in csv_head.splitlines()[0]


def test_index_jobs_are_submitted_listed_cancelled_and_waited_for(server, new_key):
    """No worker here: the job stays queued, so waiting times out; cancelling finishes it."""
    photo = {"base64": base64.b64encode(OBAMA.read_bytes()).decode()}
    with Client(server, new_key()) as fs:
        job = fs.create_index_job([{"asset_id": "a/1", "subject_id": "a", "image": photo}],
                                  idempotency_key="client-test-1")
        again = fs.create_index_job([{"asset_id": "a/1", "subject_id": "a", "image": photo}],
                                    idempotency_key="client-test-1")
        assert again["id"] == job["id"]  # an idempotent retry answers the same job
        with pytest.raises(JobTimeout) as waited:
            fs.wait_for_job(job["id"], timeout=0.5, poll_interval=0.1)
        assert waited.value.job["state"] == "queued"
        assert [j["id"] for j in fs.iter_index_jobs()] == [job["id"]]
        assert [a["asset_id"] for a in fs.iter_job_assets(job["id"])] == ["a/1"]
        assert fs.cancel_index_job(job["id"])["state"] == "cancelled"
        assert fs.wait_for_job(job["id"], timeout=5)["state"] == "cancelled"


def test_rate_limited_answers_are_retried_after_retry_after(tmp_path, new_key):
    """A server allowing 2 requests a second per key: the client waits and gets through;
    with retries off, the 429 surfaces as RateLimited with the server's Retry-After."""
    with running_server(tmp_path, RATE_LIMIT_PER_KEY="2/sec") as url:
        key = new_key()
        with Client(url, key, max_retries=8) as fs:
            tenants = [fs.get_tenant() for _ in range(6)]
        assert len({tenant["id"] for tenant in tenants}) == 1
        with Client(url, key, max_retries=0) as fs, pytest.raises(RateLimited) as limited:
            for _ in range(6):
                fs.get_tenant()
    assert limited.value.code == "rate_limited" and limited.value.status == 429
    assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 1


def test_a_photo_without_a_face_is_no_error_to_compare(server, new_key):
    with Client(server, new_key(roles=("comparer",))) as fs:
        result = fs.compare(OBAMA, [GROUPS / "017_0.jpg"])
    assert result["comparisons"][0]["error"] is not None and result["comparisons"][0]["match"] is False


def wait_for_delivery(fs: Client, endpoint_id: str, delivery_id: str, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while (delivery := fs.get_webhook_delivery(endpoint_id, delivery_id))["state"] in ("pending", "delivering"):
        assert time.monotonic() < deadline, delivery
        time.sleep(0.2)
    return delivery


def test_webhook_endpoints_tests_deliveries_and_redelivery(tmp_path, new_key):
    """A receiver on 127.0.0.1, which the SSRF guard admits only through FETCH_ALLOWED_NETWORKS (as in
    tests/tenants/webhooks), and a worker that delivers: every webhook method, and the signature checked
    with the secret the client was handed."""
    allow_local = {"FETCH_ALLOWED_NETWORKS": "127.0.0.0/8"}
    receiver = LocalServer().start()
    hook = receiver.serve("/hook", (200, b"ok"))
    try:
        with (running_server(tmp_path, **allow_local) as url, running_worker(tmp_path, **allow_local),
              Client(url, new_key(roles=("admin",))) as fs):
            made = fs.create_webhook(url=hook, events=["job.succeeded"], description="ci")
            assert made["secret"].startswith("whsec_") and made["enabled"] and made["url"] == hook
            assert [endpoint["id"] for endpoint in fs.iter_webhooks(limit=1)] == [made["id"]]
            assert fs.get_webhook(made["id"])["events"] == ["job.succeeded"]
            assert "secret" not in fs.get_webhook(made["id"])
            changed = fs.update_webhook(made["id"], events=["job.succeeded", "job.failed"], description="changed")
            assert (sorted(changed["events"]), changed["description"]) == (["job.failed", "job.succeeded"], "changed")
            rotated = fs.rotate_webhook_secret(made["id"])
            assert rotated["secret"].startswith("whsec_") and rotated["secret"] != made["secret"]

            sent = fs.test_webhook(made["id"])
            assert (sent["event_type"], sent["state"]) == ("webhook.test", "pending")
            delivered = wait_for_delivery(fs, made["id"], sent["id"])
            assert delivered["state"] == "succeeded" and delivered["payload"]
            assert [(a["number"], a["status_code"]) for a in delivered["attempt_log"]] == [(1, 200)]
            again = fs.redeliver_webhook(made["id"], sent["id"])
            assert (again["redelivery_of"], again["event_id"]) == (sent["id"], sent["event_id"])
            assert wait_for_delivery(fs, made["id"], again["id"])["state"] == "succeeded"
            listed = list(fs.iter_webhook_deliveries(made["id"], limit=1))  # newest first, one a page
            assert [delivery["id"] for delivery in listed] == [again["id"], sent["id"]]
            assert list(fs.iter_webhook_deliveries(made["id"], event_type="job.failed")) == []
            assert len(list(fs.iter_webhook_deliveries(made["id"], state="succeeded"))) == 2

            fs.delete_webhook(made["id"])
            with pytest.raises(NotFound):
                fs.get_webhook(made["id"])
            assert list(fs.iter_webhooks()) == []
    finally:
        receiver.stop()
    first, second = receiver.received
    assert Webhook(rotated["secret"]).verify(first.body, first.headers)["type"] == "webhook.test"
    assert second.headers["webhook-id"] == first.headers["webhook-id"]  # a receiver can drop the duplicate


def test_a_queued_deletion_is_followed_to_its_receipt(tmp_path, new_key):
    """DELETE_SYNC_MAX_FACES=-1 queues every deletion (202), as a large one would be."""
    with running_server(tmp_path, DELETE_SYNC_MAX_FACES="-1") as url, Client(url, new_key()) as fs:
        queued = fs.delete_faces(subject_ids=["nobody"])
        assert (queued["status"], queued["receipt"]) == ("queued", None)
        assert queued["status_url"] == f"/v1/deletions/{queued['id']}"
        assert fs.get_deletion(queued["id"])["status"] == "queued"  # no worker yet
        with pytest.raises(DeletionTimeout) as waited:
            fs.wait_for_deletion(queued["id"], timeout=0.3, poll_interval=0.1)
        assert waited.value.deletion["id"] == queued["id"]
        with running_worker(tmp_path):
            done = fs.wait_for_deletion(queued["id"], timeout=60)
        assert fs.get_deletion(queued["id"]) == done
        receipt = fs.get_receipt(done["receipt"]["receipt_id"])
        with Client(url, new_key()) as other, pytest.raises(NotFound):
            other.get_deletion(queued["id"])  # another tenant's deletion
    assert done["status"] == "succeeded" and done["requested"] == {"subject_ids": ["nobody"]}
    assert receipt == done["receipt"] and receipt["faces_deleted"] == 0
