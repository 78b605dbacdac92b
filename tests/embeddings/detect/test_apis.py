"""POST /v1/detect against real photos, the real engine and the real database: faces, quality and pose,
nothing stored, audited, roles, bad input."""

from __future__ import annotations

import base64
import io

import numpy as np
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from tests.conftest import assert_json_error
from tests.embeddings.conftest import KNOWN, table_counts
from tests.embeddings.engine.conftest import FACES

GROUP = FACES / "group-photos"


def detect(client, data: bytes, name="photo.jpg", **options):
    upload = SimpleUploadedFile(name, data, content_type="image/jpeg")
    return client.post("/v1/detect", {"image": upload, **options}, format="multipart")


def test_counts_the_faces_of_group_photos(tenant, client_for):
    client = client_for(tenant, ("searcher",))
    for name, expected in (("016_8.jpg", 8), ("014_5.jpg", 5), ("010_2.jpg", 2), ("017_0.jpg", 0)):
        response = detect(client, (GROUP / name).read_bytes())
        assert response.status_code == 200, response.content
        body = response.json()
        assert len(body["faces"]) == expected, name
        assert all(f["reason"] == "low_score" for f in body["left_out"])
    face = body["faces"][0] if body["faces"] else detect(client, (GROUP / "010_2.jpg").read_bytes()).json()["faces"][0]
    assert set(face) == {"bbox", "landmarks", "det_score", "size", "quality", "pose"}
    assert len(face["landmarks"]) == 5 and set(face["pose"]) == {"yaw", "pitch", "roll"}
    assert 0 <= face["quality"]["sharpness"] <= 1 and 0 <= face["quality"]["brightness"] <= 1


def test_json_base64_and_the_answer_shape(tenant, client_for):
    data = (KNOWN / "more" / "obama.jpg").read_bytes()
    response = client_for(tenant, ("comparer",)).post(
        "/v1/detect", {"image": {"base64": base64.b64encode(data).decode()}, "quality_filter": "HIGH"},
        format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["quality_filter"] == "HIGH" and body["model_id"]
    with Image.open(io.BytesIO(data)) as image:
        assert (body["image_width"], body["image_height"]) == image.size
    (face,) = body["faces"]
    assert face["quality"]["sharpness"] > 0.8 and abs(face["pose"]["yaw"]) < 20
    x1, y1, x2, y2 = face["bbox"]
    assert all(x1 - 5 <= x <= x2 + 5 and y1 - 5 <= y <= y2 + 5 for x, y in face["landmarks"])


def test_quality_filter_leaves_out_a_dark_face_with_its_reason(tenant, client_for):
    with Image.open(KNOWN / "more" / "obama.jpg") as image:
        dark = Image.fromarray((np.asarray(image.convert("RGB")) * 0.15).astype(np.uint8))
    buffer = io.BytesIO()
    dark.save(buffer, format="JPEG", quality=95)
    client = client_for(tenant, ("searcher",))
    high = detect(client, buffer.getvalue(), quality_filter="HIGH").json()
    assert high["faces"] == [] and [f["reason"] for f in high["left_out"]] == ["low_brightness"]
    assert high["left_out"][0]["quality"]["brightness"] < 0.1
    none = detect(client, buffer.getvalue()).json()
    assert len(none["faces"]) == 1


def test_stores_nothing_but_the_audit_event(tenant, client_for, no_new_temp_files):
    client = client_for(tenant, ("searcher",))
    before = table_counts()
    response = detect(client, (GROUP / "016_8.jpg").read_bytes())
    assert response.status_code == 200
    after = table_counts()
    changed = {table for table in after if after[table] != before.get(table)}
    assert changed <= {"audit_event", "audit_chainhead"}, changed
    assert all(after[t] == before[t] for t in after if t.startswith("embeddings_")), changed

    from audit.models import AuditEvent
    from faceservice.tenancy import platform_scope

    with platform_scope():
        (event,) = AuditEvent.objects.filter(tenant_id=tenant.id, action="faces.detected")
    assert event.details == {"source": "inline", "faces": 8, "left_out": 0, "quality_filter": "NONE"}
    assert "base64" not in str(event.details) and "image" not in str(event.target)


def test_roles_that_may_not_search_or_compare_get_403(tenant, client_for):
    data = (GROUP / "010_2.jpg").read_bytes()
    for roles in (("indexer",), ("auditor",)):
        error = assert_json_error(detect(client_for(tenant, roles), data), 403, "forbidden")
        assert error["details"]["allowed_roles"] == ["admin", "comparer", "searcher"]
    for roles in (("admin",), ("searcher",), ("comparer",)):
        assert detect(client_for(tenant, roles), data).status_code == 200


def test_malformed_input_is_400(tenant, client_for):
    client = client_for(tenant, ("searcher",))
    assert_json_error(client.post("/v1/detect", {}, format="json"), 400, "invalid_request")
    data = (GROUP / "010_2.jpg").read_bytes()
    assert_json_error(detect(client, data, quality_filter="BEST"), 400, "invalid_request")
    assert_json_error(detect(client, data, max_faces=0), 400, "invalid_request")
    assert_json_error(client.post("/v1/detect", {"image": {"base64": "x", "url": "https://example.com/a.jpg"}},
                                  format="json"), 400, "invalid_request")
    assert_json_error(detect(client, b"not an image"), 415, "not_an_image")


def test_a_thin_image_is_no_error(tenant, client_for):
    """Issue #18: a 1 x 700 image crashed detection (500); it has no face."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 700), (120, 110, 100)).save(buffer, format="PNG")
    response = detect(client_for(tenant, ("searcher",)), buffer.getvalue(), name="thin.png")
    assert response.status_code == 200, response.content
    assert response.json()["faces"] == []
