"""The README's request examples are accepted by the API's own validation."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.pure

README = PROJECT_DIR / "README.md"


def _json_body_after(marker: str) -> dict:
    text = README.read_text()
    start = text.index(marker)
    body = re.search(r"-d '(\{.*?\})'", text[start:], flags=re.S)
    assert body, f"no -d '...' body after {marker}"
    return json.loads(body.group(1))


def test_index_job_example_is_a_valid_submission(settings):
    from embeddings.indexing.apis import SubmitInput

    body = _json_body_after("localhost:8000/v1/index-jobs")
    submission = SubmitInput(data=body)
    assert submission.is_valid(), submission.errors


def test_deletion_example_names_subjects():
    body = _json_body_after("localhost:8000/v1/faces/delete")
    assert body == {"subject_ids": ["alice"]}
