"""Retry classification, and the worker pipeline in-process on real photos (real engine, real fetches)."""

from __future__ import annotations

import socket
from datetime import timedelta

import boto3
import httpcore
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from django.db import OperationalError

from embeddings.engine.errors import CorruptImage, ImageTooLarge, ModelsUnavailable, NotAnImage
from embeddings.image_sources import ImageSource
from embeddings.indexing import failures, pipeline
from embeddings.indexing.services import AssetSpec
from embeddings.models import Face, IndexJobAsset
from faceservice.outbound.errors import FetchFailed, FetchRefused, FetchTimeout, S3ObjectNotFound
from tenants.kms.errors import DecryptionFailed, KmsUnavailable
from tests.conftest import FACES_DIR, count, find, update
from tests.embeddings.indexing.conftest import now, submit

PHOTO = FACES_DIR / "known-people" / "enroll" / "obama" / "obama.jpg"


def caused(exc: Exception, cause: BaseException) -> Exception:
    exc.__cause__ = cause
    return exc


def s3_error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "x"}}, "GetObject")


@pytest.mark.parametrize("exc, code, transient", [
    (failures.HttpStatusError(503), "fetch_failed", True),
    (failures.HttpStatusError(429), "fetch_failed", True),
    (failures.HttpStatusError(500), "fetch_failed", True),
    (failures.HttpStatusError(404), "fetch_failed", False),
    (failures.HttpStatusError(403), "fetch_failed", False),
    (FetchTimeout("slow"), "fetch_timeout", True),
    (caused(FetchFailed("refused"), httpcore.ConnectError("refused")), "fetch_failed", True),
    (caused(FetchFailed("dns"), socket.gaierror("no such host")), "fetch_failed", True),
    (caused(FetchFailed("s3"), s3_error("SlowDown")), "fetch_failed", True),
    (caused(FetchFailed("s3"), s3_error("InternalError")), "fetch_failed", True),
    (caused(FetchFailed("s3"), s3_error("AccessDenied")), "fetch_failed", False),
    (caused(FetchFailed("s3"), EndpointConnectionError(endpoint_url="http://s3")), "fetch_failed", True),
    (FetchFailed("too many redirects"), "fetch_failed", False),
    (FetchRefused("private address"), "fetch_refused", False),
    (S3ObjectNotFound(), "s3_object_not_found", False),
    (NotAnImage(), "not_an_image", False),
    (CorruptImage(), "corrupt_image", False),
    (ImageTooLarge(), "image_too_large", False),
    (ModelsUnavailable("no pack in /models"), "models_unavailable", True),
    (KmsUnavailable("ThrottlingException"), "key_service_unavailable", True),
    (DecryptionFailed("bad context"), "key_unavailable", False),
    (OperationalError("server closed the connection"), "service_unavailable", True),
    (ValueError("a bug"), "internal_error", False),
])
@pytest.mark.pure
def test_classify(exc, code, transient):
    failure = failures.classify(exc)
    assert (failure.code, failure.transient) == (code, transient)


@pytest.mark.pure
def test_operator_only_messages_do_not_reach_the_client():
    failure = failures.classify(ModelsUnavailable("pack missing in /srv/secret/models"))
    assert "/srv" not in failure.message


def run_one(tenant, source: ImageSource, asset_id: str = "a"):
    job = submit(tenant, [AssetSpec(asset_id=asset_id, source=source)])
    (row,) = find(IndexJobAsset, job_id=job.id)
    return job, row, pipeline.run_asset(tenant_id=str(tenant.id), job_asset_id=str(row.id))


def test_a_flaky_server_is_retried_then_the_faces_are_indexed(tenant, images, published):
    url = images.serve("/flaky.jpg", (503, b"busy"), (200, PHOTO.read_bytes()))
    job, row, outcome = run_one(tenant, ImageSource(url=url))
    assert outcome == "retrying"
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert row.state == "retry_wait" and row.error_code == "fetch_failed" and row.attempts == 1
    update(IndexJobAsset, {"id": row.id}, next_attempt_at=now() - timedelta(seconds=1))
    assert pipeline.run_asset(tenant_id=str(tenant.id), job_asset_id=str(row.id)) == "succeeded"
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert row.state == "succeeded" and row.attempts == 2 and len(row.faces) == 1
    assert set(row.timings) >= {"fetch_ms", "analyze_ms", "store_ms", "queue_ms"}
    assert count(Face, tenant_id=tenant.id, asset_id="a") == 1


def test_a_missing_image_fails_at_once_without_retry(tenant, images, published):
    job, row, outcome = run_one(tenant, ImageSource(url=images.serve("/gone.jpg", (404, b""))))
    assert outcome == "failed"
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert (row.state, row.error_code, row.attempts) == ("failed", "fetch_failed", 1)
    assert images.routes["/gone.jpg"].hits == 1


def test_a_bad_image_fails_with_its_code(tenant, images, published):
    job, row, outcome = run_one(tenant, ImageSource(url=images.serve("/text.jpg", (200, b"hello, world"))))
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert outcome == "failed" and row.error_code == "not_an_image"


def test_a_private_address_is_refused_by_the_ssrf_guard(tenant, settings, published):
    settings.FETCH_ALLOWED_NETWORKS = []
    job, row, outcome = run_one(tenant, ImageSource(url="http://127.0.0.1:9/x.jpg"))
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert outcome == "failed" and row.error_code == "fetch_refused"


def test_s3_sources_through_moto(tenant, published):
    s3 = boto3.session.Session().client("s3")
    bucket = f"jobs-{tenant.id.hex[:12]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="people/obama.jpg", Body=PHOTO.read_bytes())
    job, row, outcome = run_one(tenant, ImageSource(s3_bucket=bucket, s3_key="people/obama.jpg"))
    assert outcome == "succeeded"
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert row.source == {"bucket": bucket} and len(row.faces) == 1  # the key is not kept
    job, row, outcome = run_one(tenant, ImageSource(s3_bucket=bucket, s3_key="nope.jpg"), asset_id="b")
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert outcome == "failed" and row.error_code == "s3_object_not_found"


def test_inline_image_is_processed_from_its_sealed_copy(tenant, published):
    job, row, outcome = run_one(tenant, ImageSource(data=PHOTO.read_bytes()))
    assert outcome == "succeeded"
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert len(row.faces) == 1


GROUP_PHOTO = FACES_DIR / "group-photos" / "016_8.jpg"  # 8 faces


def run_group_photo(tenant, subject_id, subject_faces=None):
    from embeddings.indexing.services import JobOptions, submit_index_job
    from tests.embeddings.indexing.conftest import ACTOR
    options = JobOptions(subject_faces=subject_faces) if subject_faces else JobOptions()
    job = submit_index_job(tenant_id=tenant.id, actor=ACTOR, fingerprint=f"fp-{subject_faces}", options=options,
                           assets=[AssetSpec(asset_id="group", subject_id=subject_id,
                                             source=ImageSource(data=GROUP_PHOTO.read_bytes()))]).job
    (row,) = find(IndexJobAsset, job_id=job.id)
    assert pipeline.run_asset(tenant_id=str(tenant.id), job_asset_id=str(row.id)) == "succeeded"
    (row,) = find(IndexJobAsset, job_id=job.id)
    return row


def area(bbox):
    return (bbox[2] - bbox[0]) * (bbox[3] - bbox[1])


def test_a_subjects_group_photo_labels_only_the_largest_face(tenant, published):
    """Issue #14: with a subject id the bystanders are left out (not_largest_face), not labelled."""
    row = run_group_photo(tenant, "alice")
    assert len(row.faces) == 1
    bystanders = [f for f in row.left_out if f["reason"] == "not_largest_face"]
    assert len(bystanders) >= 5 and all(area(f["bbox"]) <= area(row.faces[0]["bbox"]) for f in bystanders)
    assert count(Face, tenant_id=tenant.id, asset_id="group") == 1


def test_all_faces_of_a_subjects_photo_on_request_and_without_a_subject(tenant, published):
    labelled_all = run_group_photo(tenant, "alice", subject_faces="all")
    assert len(labelled_all.faces) >= 6
    assert not [f for f in labelled_all.left_out if f["reason"] == "not_largest_face"]
    no_subject = run_group_photo(tenant, None)
    assert len(no_subject.faces) == len(labelled_all.faces)
