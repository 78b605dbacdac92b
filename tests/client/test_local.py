"""What the client decides without a server: folder layout to ids, job batches, Retry-After."""

from __future__ import annotations

import os

import httpx
import pytest
from facesearch.errors import APIError, NotFound, ServerError, retry_after_seconds
from facesearch.indexer import State, batches, scan

pytestmark = pytest.mark.pure


def test_the_folder_gives_asset_and_subject_ids_and_hidden_files_are_skipped(tmp_path):
    for name in ["alice/1.jpg", "alice/2020/2.JPEG", "bob/x.png", "loose.webp", ".hidden/y.jpg", "alice/.z.jpg",
                 "alice/notes.txt"]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"x" * 10)
    found = [(p.asset_id, p.subject_id) for p in scan(tmp_path)]
    assert found == [("alice/1.jpg", "alice"), ("alice/2020/2.JPEG", "alice"), ("bob/x.png", "bob"),
                     ("loose.webp", None)]


def test_a_changed_photo_gets_a_new_digest_and_the_state_survives_a_reload(tmp_path):
    photo = tmp_path / "a" / "1.jpg"
    photo.parent.mkdir()
    photo.write_bytes(b"one")
    [before] = scan(tmp_path)
    state = State(tmp_path / "state" / "s.json", scope="http://x t1")
    state.add([before.digest])
    assert before.digest in State(tmp_path / "state" / "s.json", scope="http://x t1").done
    assert not State(tmp_path / "state" / "s.json", scope="http://x t2").done  # another tenant
    photo.write_bytes(b"other")
    os.utime(photo, ns=(1, 1))
    [after] = scan(tmp_path)
    assert after.digest != before.digest


def test_batches_stay_under_the_file_and_byte_limits(tmp_path):
    for i, size in enumerate([40, 40, 40, 100, 10]):
        (tmp_path / f"{i}.jpg").write_bytes(b"x" * size)
    grouped = [[p.asset_id for p in batch] for batch in batches(scan(tmp_path), max_files=2, max_bytes=90)]
    assert grouped == [["0.jpg", "1.jpg"], ["2.jpg"], ["3.jpg"], ["4.jpg"]]  # a lone large photo still goes


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "3"})) == 3
    assert retry_after_seconds(httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})) == 0
    assert retry_after_seconds(httpx.Response(429)) is None


def test_an_answer_that_is_not_the_api_json_still_becomes_an_api_error():
    html = httpx.Response(502, text="<html>Bad Gateway</html>", headers={"X-Request-ID": "r1"})
    error = APIError.from_response(html)
    assert isinstance(error, ServerError) and (error.code, error.request_id) == ("http_502", "r1")
    body = {"error": {"code": "not_found", "message": "No such job.", "request_id": "r2"}}
    error = APIError.from_response(httpx.Response(404, json=body))
    assert isinstance(error, NotFound) and (error.code, error.message, error.request_id) == (
        "not_found", "No such job.", "r2")
