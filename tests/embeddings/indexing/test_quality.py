"""Issue #16 at indexing: the quality filter (AUTO by default), each face's quality stored and shown, the
faces left out with their reason and quality. Real photos, the real engine, the worker pipeline in-process."""

from __future__ import annotations

import io

import cv2
import numpy as np
from PIL import Image

from embeddings.image_sources import ImageSource
from embeddings.indexing import pipeline
from embeddings.indexing.services import AssetSpec, JobOptions, submit_index_job
from embeddings.models import Face, IndexJobAsset
from tests.conftest import FACES_DIR, find
from tests.embeddings.indexing.conftest import ACTOR

OBAMA = FACES_DIR / "known-people" / "enroll" / "obama" / "obama.jpg"
STORED = {"sharpness", "brightness", "yaw", "pitch", "roll", "size"}


def blurred(path, sigma: float = 10.0) -> bytes:
    image = np.asarray(Image.open(path).convert("RGB"))
    out = io.BytesIO()
    Image.fromarray(cv2.GaussianBlur(image, (0, 0), sigma)).save(out, format="JPEG", quality=95)
    return out.getvalue()


def run_job(tenant, assets: dict[str, bytes], options: JobOptions, fingerprint: str) -> dict[str, IndexJobAsset]:
    job = submit_index_job(tenant_id=tenant.id, actor=ACTOR, fingerprint=fingerprint, options=options,
                           assets=[AssetSpec(asset_id=name, subject_id="obama", source=ImageSource(data=data))
                                   for name, data in assets.items()]).job
    for row in find(IndexJobAsset, job_id=job.id):
        assert pipeline.run_asset(tenant_id=str(tenant.id), job_asset_id=str(row.id)) == "succeeded"
    return {row.asset_id: row for row in find(IndexJobAsset, job_id=job.id)}


def test_an_index_job_stores_and_shows_each_faces_quality(tenant, published, client_for):
    assert JobOptions().quality_filter == "AUTO"  # the default: LOW, by measurement
    rows = run_job(tenant, {"sharp": OBAMA.read_bytes()}, JobOptions(), "fp-quality")
    (face,) = rows["sharp"].faces
    assert face["quality"]["sharpness"] > 0.9 and abs(face["pose"]["yaw"]) < 10

    (stored,) = find(Face, tenant_id=tenant.id, asset_id="sharp")
    assert set(stored.quality) == STORED and stored.quality["size"] > 200
    assert stored.quality["sharpness"] == face["quality"]["sharpness"]

    listed = client_for(tenant, ("searcher",)).get("/v1/faces?asset_id=sharp").json()["results"]
    assert listed[0]["quality"] == face["quality"] and listed[0]["pose"] == face["pose"]


def test_quality_filter_high_leaves_a_blurred_photo_out_with_the_reason(tenant, published, client_for):
    rows = run_job(tenant, {"sharp": OBAMA.read_bytes(), "blurred": blurred(OBAMA)},
                   JobOptions(quality_filter="HIGH"), "fp-quality-high")
    assert len(rows["sharp"].faces) == 1 and rows["sharp"].left_out == []
    assert rows["blurred"].faces == []
    (left,) = rows["blurred"].left_out
    assert left["reason"] == "low_sharpness" and left["quality"]["sharpness"] < 0.4  # HIGH's bar
    assert set(left) == {"bbox", "det_score", "size", "reason", "quality", "pose"}
    assert not find(Face, tenant_id=tenant.id, asset_id="blurred")


def test_the_api_takes_quality_filter_and_refuses_an_unknown_level(tenant, client_for, published):
    client = client_for(tenant, ("indexer",))
    asset = {"asset_id": "a", "image": {"url": "https://example.com/a.jpg"}}
    job = client.post("/v1/index-jobs", {"assets": [asset], "options": {"quality_filter": "MEDIUM"}},
                      format="json").json()
    assert job["options"]["quality_filter"] == "MEDIUM"
    default = client.post("/v1/index-jobs", {"assets": [asset]}, format="json").json()
    assert default["options"]["quality_filter"] == "AUTO"
    refused = client.post("/v1/index-jobs", {"assets": [asset], "options": {"quality_filter": "BEST"}},
                          format="json")
    assert refused.status_code == 400


def test_a_job_stored_before_the_filter_existed_keeps_no_filter():
    # Submitted without a quality filter: it runs as it was submitted, not under today's default.
    assert JobOptions.from_dict({"max_faces": 3}).quality_filter == "NONE"
    assert JobOptions.from_dict(JobOptions().as_dict()) == JobOptions()
