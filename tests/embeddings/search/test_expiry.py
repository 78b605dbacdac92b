"""A face past its expiry is never an answer, whenever the retention purge runs (every search path)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from django.core.cache import cache
from django.utils import timezone

from embeddings.search import selectors
from tests.embeddings.conftest import MODEL, index, unit


@pytest.mark.parametrize("memory_bytes", [512 * 1024 * 1024, 0], ids=["gallery", "pgvector"])
def test_an_expired_face_is_never_returned(tenant, settings, memory_bytes):
    settings.SEARCH_MEMORY_MAX_BYTES = memory_bytes
    cache.clear()
    rng = np.random.default_rng(3)
    vectors = unit(rng, 4)
    live = index(tenant, "live", vectors[:2]).face_ids
    expired = index(tenant, "expired", vectors[2:], expires_at=timezone.now() - timedelta(seconds=1)).face_ids
    for probe in vectors:
        found = {m.face_id for m in selectors.search_faces(tenant_id=tenant.id, embedding=probe, model_id=MODEL,
                                                           top_k=10, threshold=-1.0)}
        assert found == set(live), (found, expired)
