"""Index jobs from files: multipart `POST /v1/index-jobs` (a JSON manifest + one file part per asset).

Real photos, the real parser and upload handler, the real engine: the assets are run
through the worker pipeline in-process (the broker is the `published` stand-in).
"""

from __future__ import annotations

import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from embeddings.indexing import pipeline
from embeddings.models import Face, IndexJob, IndexJobAsset, InlineImage
from tests.conftest import FACES_DIR, assert_json_error, count, find

ENROLL = FACES_DIR / "known-people" / "enroll"
PHOTOS = {  # part name: (asset id, subject id, photo)
    "p1": ("obama-1", "obama", ENROLL / "obama" / "obama.jpg"),
    "p2": ("biden-1", "biden", ENROLL / "biden" / "biden.jpg"),
    "p3": ("rose-1", None, ENROLL / "rose_leslie" / "img1.jpg"),
}
GIF = b"GIF89a\x01\x00\x01\x00\x00\x00\x00;"


@pytest.fixture
def indexer(tenant, client_for):
    return client_for(tenant, roles=("indexer",))


def manifest(*assets, **extra) -> str:
    return json.dumps({"assets": list(assets), **extra})


def asset(asset_id: str, file: str, subject_id: str | None = None) -> dict:
    return {"asset_id": asset_id, "file": file, **({"subject_id": subject_id} if subject_id else {})}


def upload(name: str, data: bytes) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="application/octet-stream")


def photo_parts() -> tuple[str, dict]:
    assets = [asset(asset_id, part, subject) for part, (asset_id, subject, _) in PHOTOS.items()]
    files = {part: upload(path.name, path.read_bytes()) for part, (_, _, path) in PHOTOS.items()}
    return manifest(*assets, options={"min_det_score": 0.5}), files


def post_files(client, manifest_text: str | None, files: dict, **headers):
    form = dict(files) if manifest_text is None else {"manifest": manifest_text, **files}
    return client.post("/v1/index-jobs", form, format="multipart", **headers)


def test_a_multi_file_job_indexes_every_asset_with_its_subject(indexer, tenant, published, no_new_temp_files):
    text, files = photo_parts()
    response = post_files(indexer, text, files)
    assert response.status_code == 202, response.content
    job = response.json()
    assert job["counts"]["assets_total"] == 3 and job["options"]["min_det_score"] == 0.5

    # Sealed before it was stored: no row holds the photo's bytes, or any run of them.
    rows = find(IndexJobAsset, order_by="position", job_id=job["id"])
    assert [(r.asset_id, r.subject_id, r.source_kind) for r in rows] == [
        (asset_id, subject, "inline") for asset_id, subject, _ in PHOTOS.values()]
    for row, (_, _, path) in zip(rows, PHOTOS.values(), strict=True):
        (sealed,) = find(InlineImage, job_asset_id=row.id)
        ciphertext, plain = bytes(sealed.ciphertext), path.read_bytes()
        assert plain not in ciphertext and plain[:64] not in ciphertext and plain[-64:] not in ciphertext

    for row in rows:
        assert pipeline.run_asset(tenant_id=str(tenant.id), job_asset_id=str(row.id)) == "succeeded"
    for asset_id, subject, _ in PHOTOS.values():
        faces = find(Face, tenant_id=tenant.id, asset_id=asset_id)
        assert len(faces) == 1 and faces[0].subject_id == subject and str(faces[0].job_id) == job["id"]
    assert count(InlineImage, tenant_id=tenant.id) == 0  # each sealed image deleted once its asset finished
    assert indexer.get(job["status_url"]).json()["state"] == "succeeded"


def test_the_json_body_and_files_agree_on_options_and_expiry(indexer, published):
    path = PHOTOS["p1"][2]
    response = post_files(indexer, manifest(asset("a", "f"), options={"max_faces": 2},
                                            faces_expire_at="2099-01-01T00:00:00Z"),
                          {"f": upload("a.jpg", path.read_bytes())})
    assert response.status_code == 202, response.content
    assert response.json()["options"]["max_faces"] == 2
    assert response.json()["faces_expire_at"].startswith("2099-01-01")


def test_idempotency_covers_the_manifest_and_the_files(indexer, tenant, published):
    text, files = photo_parts()
    first = post_files(indexer, text, files, HTTP_IDEMPOTENCY_KEY="upload-1")
    again = post_files(indexer, *photo_parts(), HTTP_IDEMPOTENCY_KEY="upload-1")
    assert first.status_code == again.status_code == 202
    assert again.json()["id"] == first.json()["id"] and again["Idempotent-Replayed"] == "true"
    text, files = photo_parts()
    files["p3"] = upload("other.jpg", PHOTOS["p1"][2].read_bytes())  # same manifest, other bytes
    other = post_files(indexer, text, files, HTTP_IDEMPOTENCY_KEY="upload-1")
    assert_json_error(other, 422, "idempotency_key_reused")
    assert count(IndexJob, tenant_id=tenant.id) == 1


def test_a_file_that_is_not_an_image_names_its_asset(indexer, tenant, published):
    path = PHOTOS["p1"][2]
    response = post_files(indexer, manifest(asset("good", "a"), asset("notes", "b")),
                          {"a": upload("a.jpg", path.read_bytes()), "b": upload("b.txt", b"hello, world")})
    error = assert_json_error(response, 415, "not_an_image")
    assert error["details"]["files"] == [
        {"file": "b", "asset_id": "notes", "code": "not_an_image", "message": error["details"]["files"][0]["message"]}]
    assert count(IndexJob, tenant_id=tenant.id) == 0


def test_a_format_we_do_not_accept_is_415(indexer, published):
    response = post_files(indexer, manifest(asset("anim", "a")), {"a": upload("a.gif", GIF)})
    error = assert_json_error(response, 415, "unsupported_format")
    assert error["details"]["files"][0]["asset_id"] == "anim"


def test_a_file_over_the_image_limit_is_413_naming_its_asset(indexer, tenant, settings, published,
                                                            no_new_temp_files):
    settings.MAX_IMAGE_BYTES = 100_000
    small, large = PHOTOS["p3"][2].read_bytes(), (FACES_DIR / "group-photos" / "001_A.jpg").read_bytes()
    assert len(small) < settings.MAX_IMAGE_BYTES < len(large)
    response = post_files(indexer, manifest(asset("small", "a"), asset("large", "b")),
                          {"a": upload("a.jpg", small), "b": upload("b.jpg", large)})
    error = assert_json_error(response, 413, "image_too_large")
    assert [(f["asset_id"], f["file"]) for f in error["details"]["files"]] == [("large", "b")]
    assert count(IndexJob, tenant_id=tenant.id) == 0


def test_missing_and_unnamed_parts_are_listed_together(indexer, tenant, published):
    path = PHOTOS["p1"][2]
    response = post_files(indexer, manifest(asset("a", "pa"), asset("b", "pb"), asset("c", "pc")),
                          {"pa": upload("a.jpg", path.read_bytes()), "pc": upload("c.txt", b"text"),
                           "stray": upload("s.jpg", path.read_bytes())})
    error = assert_json_error(response, 400, "invalid_request")
    assert [(f["file"], f["asset_id"], f["code"]) for f in error["details"]["files"]] == [
        ("pb", "b", "file_missing"), ("pc", "c", "not_an_image"), ("stray", None, "unexpected_file")]
    assert count(IndexJob, tenant_id=tenant.id) == 0


def test_only_a_missing_part_is_file_missing(indexer, published):
    response = post_files(indexer, manifest(asset("a", "pa")), {})
    error = assert_json_error(response, 400, "file_missing")
    assert error["details"]["files"][0]["asset_id"] == "a"


@pytest.mark.parametrize("text, files, expected", [
    (None, {"pa": b"x"}, "required"),
    ("{not json", {}, "not valid JSON"),
    ('["a"]', {}, "JSON object"),
    (manifest(), {}, "assets"),
    (manifest({"asset_id": "a"}), {}, "file"),
    (manifest(asset("a", "f"), asset("a", "g")), {}, "once per job"),
    (manifest(asset("a", "f"), asset("b", "f")), {}, "one asset"),
    (manifest(asset("a", "f"), options={"max_faces": 0}), {}, "max_faces"),
])
def test_an_invalid_manifest_is_400_with_details(indexer, text, files, expected, published):
    response = post_files(indexer, text, {name: upload("x.jpg", data) for name, data in files.items()})
    error = assert_json_error(response, 400, "invalid_request")
    assert expected in json.dumps(error["details"]["manifest"])


def test_a_manifest_sent_as_a_file_is_refused_with_a_hint(indexer, published):
    response = post_files(indexer, None, {"manifest": upload("m.json", manifest(asset("a", "f")).encode())})
    error = assert_json_error(response, 400, "invalid_request")
    assert "text part" in str(error["details"]["manifest"])


def test_more_assets_than_a_job_holds_is_400(indexer, settings, published):
    settings.INDEX_JOB_MAX_ASSETS = 1
    response = post_files(indexer, manifest(asset("a", "f"), asset("b", "g")), {})
    error = assert_json_error(response, 400, "invalid_request")
    assert "at most 1" in json.dumps(error["details"])


def test_more_files_than_allowed_is_a_clean_413(indexer, tenant, settings, published):
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 2
    data = PHOTOS["p1"][2].read_bytes()
    response = post_files(indexer, manifest(*(asset(f"a{i}", f"f{i}") for i in range(3))),
                          {f"f{i}": upload(f"{i}.jpg", data) for i in range(3)})
    assert_json_error(response, 413, "request_too_large")
    assert count(IndexJob, tenant_id=tenant.id) == 0


def test_the_file_count_limit_follows_the_job_asset_limit(settings):
    assert settings.DATA_UPLOAD_MAX_NUMBER_FILES == settings.INDEX_JOB_MAX_ASSETS


def test_a_body_over_the_request_limit_is_a_clean_413(indexer, settings, published, no_new_temp_files):
    settings.MAX_REQUEST_BYTES = 100_000
    text, files = photo_parts()
    assert_json_error(post_files(indexer, text, files), 413, "request_too_large")
