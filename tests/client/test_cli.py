"""The `facesearch` command against the real service: a runserver process, a Celery worker,
real photos. Index a folder, re-run it (nothing sent again), add a photo (only it is sent),
search, compare, list, wait, delete, export; the key is never printed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from facesearch.cli import main

from tests.client.conftest import GROUPS, KNOWN, running_server, running_worker


@pytest.fixture
def worker(tmp_path, committed_db):
    with running_worker(tmp_path) as started:
        yield started


@pytest.fixture
def photos(tmp_path):
    """photos/<subject>/<photo> links to the shared photos (never copied into the repository)."""
    root = tmp_path / "photos"
    for subject, name in [("obama", "obama.jpg"), ("biden", "biden.jpg"), ("kit_harington", "john1.jpeg")]:
        (root / subject).mkdir(parents=True)
        (root / subject / name).symlink_to(KNOWN / "enroll" / subject / name)
    (root / "empty-room.jpg").symlink_to(GROUPS / "017_0.jpg")  # no subject, no face
    (root / "notes.txt").write_text("not a photo")
    return root


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_index_a_folder_resume_and_use_every_command(server, new_key, photos, worker, capsys, monkeypatch,
                                                      tmp_path):
    key = new_key()
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("FACESEARCH_URL", server)
    monkeypatch.setenv("FACESEARCH_API_KEY", key)
    printed = []

    def run(*args: str) -> tuple[int, str]:
        code, out, err = cli(capsys, *args)
        printed.append(out + err)
        return code, out

    code, out = run("index", str(photos), "--batch-size", "2", "--parallel", "2")
    summary = json.loads(out)
    assert code == 0, (summary, worker.tail())
    assert (summary["indexed"], summary["skipped"], summary["failed"]) == (4, 0, [])
    assert summary["faces"] == 3 and len(summary["jobs"]) == 2  # 4 photos, 2 a job; the empty room has none

    code, out = run("index", str(photos))  # resumed: nothing to send
    assert code == 0 and json.loads(out) | {"jobs": None} == {"indexed": 0, "faces": 0, "skipped": 4,
                                                               "failed": [], "jobs": None}
    assert json.loads(out)["jobs"] == []

    (photos / "obama" / "obama2.jpg").symlink_to(KNOWN / "more/obama2.jpg")
    code, out = run("index", str(photos), "--inline-base64")  # the JSON path, for servers without multipart
    assert code == 0 and (json.loads(out)["indexed"], json.loads(out)["skipped"]) == (1, 4)

    code, out = run("faces", "list", "--subject", "obama")
    faces = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and sorted(face["asset_id"] for face in faces) == ["obama/obama.jpg", "obama/obama2.jpg"]

    code, out = run("search", str(KNOWN / "probe/obama1.jpg"), "--top-k", "3", "--group-by-subject")
    best = json.loads(out)["faces"][0]["matches"][0]
    assert code == 0 and best["subject_id"] == "obama" and best["asset_id"].startswith("obama/")

    code, out = run("compare", str(KNOWN / "probe/obama1.jpg"), str(KNOWN / "more/obama.jpg"),
                    str(KNOWN / "enroll/biden/biden.jpg"))
    assert code == 0 and [c["match"] for c in json.loads(out)["comparisons"]] == [True, False]

    code, out = run("jobs", "wait", summary["jobs"][0], "--timeout", "10")
    assert code == 0 and json.loads(out)["state"] == "succeeded"

    code, out = run("delete", "--subject", "obama")
    assert code == 0 and json.loads(out)["faces_deleted"] == 2

    export = tmp_path / "audit.jsonl"
    code, _ = run("audit", "export", "--output", str(export), "--action", "faces.*")
    actions = {json.loads(line)["action"] for line in export.read_text().splitlines()}
    assert code == 0 and "faces.deleted" in actions, actions

    secret = key.split("_", 2)[2]  # fsk_<prefix>_<secret>: the secret may itself hold "_"
    assert not any(key in text or secret in text for text in printed)
    [state] = (tmp_path / "state" / "facesearch").iterdir()  # outside the photo folder
    assert not list(photos.glob(".*"))
    assert "obama" not in state.read_text() and key not in state.read_text()  # digests only


def test_errors_are_one_line_with_the_code_and_request_id(server, new_key, capsys):
    code, out, err = cli(capsys, "--url", server, "--api-key", "fsk_nope_nope", "faces", "list")
    assert code == 1 and out == ""
    assert err.startswith("error: 401 invalid_api_key: ") and "request id " in err and "fsk_nope" not in err

    code, _, err = cli(capsys, "--url", server, "--api-key", new_key(roles=("searcher",)), "delete", "--subject", "x")
    assert code == 1 and "403 forbidden" in err

    code, _, err = cli(capsys, "--url", server, "--api-key", new_key(), "delete")
    assert code == 2 and "--subject" in err


def test_the_console_script_is_installed(server, new_key, tmp_path):
    """`pip install ./client` put `facesearch` beside the interpreter; URL and key from the environment."""
    script = shutil.which("facesearch", path=os.path.dirname(sys.executable))
    assert script, "facesearch is not installed (requirements-dev.txt installs ./client)"
    env = {**os.environ, "FACESEARCH_URL": server, "FACESEARCH_API_KEY": new_key()}
    done = subprocess.run([script, "faces", "list"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "", done.stderr


def test_delete_prints_a_queued_deletion_or_waits_for_its_receipt(tmp_path, new_key, capsys):
    """DELETE_SYNC_MAX_FACES=-1 queues every deletion (202), as a large one would be."""
    with running_server(tmp_path, DELETE_SYNC_MAX_FACES="-1") as url:
        account = ["--url", url, "--api-key", new_key()]
        code, out, err = cli(capsys, *account, "delete", "--subject", "nobody")
        queued = json.loads(out)
        assert code == 0 and queued["status"] == "queued" and queued["receipt"] is None  # no worker yet
        assert f"follow it at /v1/deletions/{queued['id']}" in err and "--wait" in err

        code, out, err = cli(capsys, *account, "delete", "--subject", "nobody", "--wait", "--timeout", "0.5")
        assert code == 3 and out == "" and "still queued" in err

        with running_worker(tmp_path):
            code, out, err = cli(capsys, *account, "delete", "--subject", "nobody", "--wait", "--timeout", "60")
    receipt = json.loads(out)
    assert code == 0, err
    assert receipt["requested"] == {"subject_ids": ["nobody"]} and receipt["faces_deleted"] == 0
    assert receipt["receipt_id"] and receipt["deleted_at"]
