"""Tenants with real faces indexed from ../shared/faces/known-people (through the real engine)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from audit.services import Actor
from embeddings.engine import decode_image
from embeddings.face_engine import face_engine
from embeddings.store.services import replace_asset_faces
from tests.conftest import FACES_DIR

KNOWN = FACES_DIR / "known-people"
PROBES = KNOWN / "probe"


def photo(path) -> bytes:
    return path.read_bytes()


def enroll(tenant) -> dict[str, list]:
    """Index every enrol photo of known-people, subject = the person's folder name."""
    engine = face_engine()
    face_ids: dict[str, list] = {}
    for person_dir in sorted((KNOWN / "enroll").iterdir()):
        for image_path in sorted(person_dir.iterdir()):
            analysis = engine.analyze(decode_image(image_path.read_bytes()))
            result = replace_asset_faces(
                tenant_id=tenant.id, asset_id=f"{person_dir.name}/{image_path.name}",
                subject_id=person_dir.name, faces=analysis.faces[:1], model_id=engine.model_id,
                submitted_at=timezone.now(), actor=Actor.system("tests"))
            face_ids.setdefault(person_dir.name, []).extend(result.face_ids)
    return face_ids


@pytest.fixture
def enrolled(tenant):
    if not KNOWN.is_dir():
        pytest.skip(f"{KNOWN} is missing")
    return tenant, enroll(tenant)
