"""Uploaded images stay in memory: never a temp file, whatever their size."""

from __future__ import annotations

import os
import tempfile

import pytest
from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile, TemporaryUploadedFile
from django.http.multipartparser import MultiPartParser
from django.test import RequestFactory, override_settings

from faceservice.errors import PayloadTooLarge

DJANGO_DEFAULT_HANDLERS = [
    "django.core.files.uploadhandler.MemoryFileUploadHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]
IMAGE = os.urandom(256 * 1024)  # far above the spill threshold set below


@pytest.fixture
def private_tempdir(tmp_path, monkeypatch) -> str:
    """tempfile.gettempdir() points at an empty folder of this test's own, so a
    listing before and after is exact (the real /tmp is shared with other processes)."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    assert tempfile.gettempdir() == str(folder)
    return str(folder)


def _parse_upload(handlers: list[str], content: bytes = IMAGE):
    """Parse a real multipart request the way Django does, with these upload handlers."""
    request = RequestFactory().post("/upload", {"image": _named_file(content), "name": "x"})
    with override_settings(FILE_UPLOAD_HANDLERS=handlers):
        request.upload_handlers  # noqa: B018 - built from the settings on first access
    parser = MultiPartParser(request.META, request, request.upload_handlers, request.encoding)
    return parser.parse()


def _named_file(content: bytes):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return SimpleUploadedFile("face.jpg", content, content_type="image/jpeg")


@pytest.mark.pure
@override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_upload_arrives_in_memory_and_leaves_no_temp_file(private_tempdir):
    before = set(os.listdir(private_tempdir))
    _, files = _parse_upload(settings.FILE_UPLOAD_HANDLERS)
    upload = files["image"]
    after = set(os.listdir(private_tempdir))  # while the upload is still open
    assert isinstance(upload, InMemoryUploadedFile)
    assert upload.read() == IMAGE
    assert after == before


@pytest.mark.pure
@override_settings(FILE_UPLOAD_MAX_MEMORY_SIZE=1024)
def test_the_listing_would_catch_a_temp_file(private_tempdir):
    # The control: Django's default handlers spill this upload to a temp file,
    # and the same listing sees it. So the test above can fail.
    before = set(os.listdir(private_tempdir))
    _, files = _parse_upload(DJANGO_DEFAULT_HANDLERS)
    assert isinstance(files["image"], TemporaryUploadedFile)
    assert set(os.listdir(private_tempdir)) - before
    files["image"].close()


@pytest.mark.pure
@override_settings(MAX_IMAGE_BYTES=64 * 1024)
def test_upload_over_the_image_limit_is_refused_without_a_temp_file(private_tempdir):
    with pytest.raises(PayloadTooLarge) as refused:
        _parse_upload(settings.FILE_UPLOAD_HANDLERS)
    assert refused.value.code == "image_too_large"
    assert os.listdir(private_tempdir) == []


@pytest.mark.pure
def test_only_the_in_memory_handler_is_configured():
    assert settings.FILE_UPLOAD_HANDLERS == ["faceservice.api.uploads.InMemoryOnlyUploadHandler"]
