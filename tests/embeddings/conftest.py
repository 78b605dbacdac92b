"""Helpers for the face store, search and index tests: tenants with real faces indexed from
../shared/faces/known-people (through the real engine), synthetic embeddings, row counts."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from django.db import connection
from django.utils import timezone

from audit.services import Actor
from embeddings.engine import decode_image
from embeddings.face_engine import face_engine
from embeddings.store import services
from faceservice.tenancy import platform_scope
from tests.conftest import FACES_DIR, installed_dimension, installed_model_id

KNOWN = FACES_DIR / "known-people"
PROBES = KNOWN / "probe"

# Synthetic faces for the store and search tests.
# The installed pack's id: a collection holds one model's faces, and index jobs
# are checked against the installed pack, as the workers would have made them.
MODEL = installed_model_id()
DIM = installed_dimension()
ACTOR = Actor.system("tests")


def photo(path) -> bytes:
    return path.read_bytes()


def enroll(tenant) -> dict[str, list]:
    """Index every enrol photo of known-people, subject = the person's folder name."""
    engine = face_engine()
    face_ids: dict[str, list] = {}
    for person_dir in sorted((KNOWN / "enroll").iterdir()):
        for image_path in sorted(person_dir.iterdir()):
            analysis = engine.analyze(decode_image(image_path.read_bytes()))
            result = services.replace_asset_faces(
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


@dataclass
class FakeDetection:
    """What the engine hands the store: a box, a score and a unit embedding."""

    embedding: np.ndarray
    bbox: tuple = (10.0, 20.0, 110.0, 140.0)
    det_score: float = 0.9


def unit(rng, n=1, dim=DIM):
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def index(tenant, asset_id, vectors, **kwargs):
    return services.replace_asset_faces(
        tenant_id=tenant.id, asset_id=asset_id, faces=[FakeDetection(v) for v in vectors],
        model_id=MODEL, submitted_at=kwargs.pop("submitted_at", timezone.now()), actor=ACTOR, **kwargs)


def table_counts() -> dict[str, int]:
    """Rows per table, past row-level security, inside the test's transaction."""
    with platform_scope(), connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(f'SELECT count(*) FROM "{table}"')  # noqa: S608 - names from the catalog
            counts[table] = cursor.fetchone()[0]
    return counts
