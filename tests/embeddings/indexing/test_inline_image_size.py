"""An inline image is measured when it is submitted: over MAX_IMAGE_BYTES by one byte is refused at once.

Before issue #18 the base64 check estimated the size from the encoded length,
which let an image up to 3 bytes over the limit through: the job answered 202
and its worker failed the asset later. The decoded length is now checked at
submission (embeddings/api.py `within_image_limit`), and sealing refuses an
oversized image whatever path brought it (embeddings/indexing/inline_images.py).
"""

from __future__ import annotations

import base64
import uuid

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from embeddings.engine import ImageTooLarge
from embeddings.indexing import inline_images
from tests.conftest import assert_json_error

LIMIT = 1000  # MAX_IMAGE_BYTES for these tests: small, so every size near it is cheap
FORMS = ["plain", "data_uri", "spaced"]


@pytest.fixture
def small_limit(settings):
    settings.MAX_IMAGE_BYTES = LIMIT


@pytest.fixture
def indexer(tenant, client_for, small_limit):
    return client_for(tenant, roles=("indexer",))


def encoded(size: int, form: str) -> str:
    """`size` bytes as base64, as a client may send them (padding varies with size % 3)."""
    text = base64.b64encode(b"\xab" * size).decode()
    if form == "data_uri":
        return f"data:image/jpeg;base64,{text}"
    return f"  {text}\n" if form == "spaced" else text


def submit(client, size: int, form: str):
    body = {"assets": [{"asset_id": "a", "image": {"base64": encoded(size, form)}}]}
    return client.post("/v1/index-jobs", body, format="json")


# database=None: no .hypothesis/ folder in the working tree.
@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(size=st.integers(LIMIT - 6, LIMIT + 12), form=st.sampled_from(FORMS))
@example(size=LIMIT, form="plain")
@example(size=LIMIT + 1, form="plain")  # the case: a few bytes over
@example(size=LIMIT + 2, form="data_uri")
@example(size=LIMIT + 3, form="spaced")
def test_an_inline_image_is_accepted_exactly_up_to_the_limit(indexer, published, size, form):
    response = submit(indexer, size, form)
    if size <= LIMIT:
        assert response.status_code == 202, response.content[:300]
        return
    error = assert_json_error(response, 400, "invalid_request")
    (message,) = error["details"]["assets"]["0"]["image"]
    assert message.startswith("image_too_large:") and str(LIMIT) in message


@pytest.mark.parametrize("size", [LIMIT + 1, LIMIT + 3])
def test_search_refuses_an_inline_image_just_over_the_limit(tenant, client_for, small_limit, size):
    searcher = client_for(tenant, roles=("searcher",))
    response = searcher.post("/v1/search", {"image": {"base64": encoded(size, "plain")}}, format="json")
    assert_json_error(response, 413, "image_too_large")


def test_sealing_refuses_an_image_over_the_limit(tenant, small_limit):
    from tenants import data_keys

    key = data_keys.active_key(tenant_id=tenant.id)
    images = {uuid.uuid4(): b"\xab" * LIMIT, uuid.uuid4(): b"\xab" * (LIMIT + 1)}
    with pytest.raises(ImageTooLarge):
        inline_images.sealed_rows(tenant_id=tenant.id, job_id=uuid.uuid4(), images=images, key=key)
    rows = inline_images.sealed_rows(tenant_id=tenant.id, job_id=uuid.uuid4(),
                                     images={uuid.uuid4(): b"\xab" * LIMIT}, key=key)
    assert len(rows) == 1
