"""The README's request examples are accepted by the API's own validation; the indexing one runs as
written (its curl command, its local photo) against a live server."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess

import pytest

from tests.conftest import PROJECT_DIR

README = PROJECT_DIR / "README.md"


def _json_body_after(marker: str) -> dict:
    text = README.read_text()
    start = text.index(marker)
    body = re.search(r"-d '(\{.*?\})'", text[start:], flags=re.S)
    assert body, f"no -d '...' body after {marker}"
    return json.loads(body.group(1))


def _command_at(marker: str) -> str:
    """The shell command starting at `marker`, its continuation lines joined."""
    text = README.read_text()
    start = text.rindex("curl", 0, text.index(marker))
    lines = []
    for line in text[start:].splitlines():
        lines.append(line.strip().removesuffix("\\").strip())
        if not line.rstrip().endswith("\\"):
            return " ".join(lines)
    raise AssertionError(f"the command at {marker} never ends")


INDEX_EXAMPLE = "localhost:8000/v1/index-jobs -H"


@pytest.mark.pure
def test_index_job_example_is_a_valid_multipart_submission(settings):
    from embeddings.indexing.apis import ManifestInput

    words = shlex.split(_command_at(INDEX_EXAMPLE))
    forms = dict(words[i + 1].split("=", 1) for i, word in enumerate(words) if word == "-F")
    manifest = ManifestInput(data=json.loads(forms.pop("manifest")))
    assert manifest.is_valid(), manifest.errors
    (asset,) = manifest.validated_data["assets"]
    photo = forms[asset["file"]]
    assert photo.startswith("@") and (PROJECT_DIR / photo[1:]).is_file(), photo  # a real local photo


@pytest.mark.pure
def test_deletion_example_names_subjects():
    body = _json_body_after("localhost:8000/v1/faces/delete")
    assert body == {"subject_ids": ["alice"]}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A runserver process on the committed test database (the client tests' own helper)."""
    from tests.client.conftest import running_server

    with running_server(tmp_path_factory.mktemp("server")) as url:
        yield url


def test_index_job_example_runs_as_written(committed_db, server):
    """The README's curl, run from the repository root with a fresh tenant's key: 202 and a job of the photo."""
    from audit.services import Actor
    from embeddings.indexing.models import IndexJobAsset
    from faceservice.tenancy import platform_scope
    from tenants import services

    tenant = services.create_tenant(name=f"readme-{os.urandom(4).hex()}", actor=Actor.operator("tests"))
    key = services.create_api_key(tenant_id=tenant.id, name="readme", roles=["indexer"],
                                  actor=Actor.operator("tests")).plaintext
    command = _command_at(INDEX_EXAMPLE).replace("localhost:8000", server, 1)
    run = subprocess.run(["bash", "-c", command + " -w '\\n%{http_code}'"], capture_output=True, text=True,
                         timeout=60, cwd=PROJECT_DIR, env={**os.environ, "KEY": key})
    body, _, status = run.stdout.rpartition("\n")
    assert status == "202", run.stdout[-2000:] + run.stderr[-2000:]
    job = json.loads(body)
    with platform_scope():
        rows = list(IndexJobAsset.objects.filter(job_id=job["id"]).values_list("asset_id", "subject_id",
                                                                               "source_kind"))
    assert rows == [("photo-1", "alice", "inline")]
