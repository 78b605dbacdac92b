"""Helpers for the search tests."""

from __future__ import annotations

import base64

from django.core.files.uploadedfile import SimpleUploadedFile


def search(client, image_bytes=None, **options):
    if image_bytes is not None and options.pop("as_json", False):
        return client.post("/v1/search", {"image": {"base64": base64.b64encode(image_bytes).decode()},
                                          **options}, format="json")
    if image_bytes is not None:
        return client.post("/v1/search", {"image": _upload(image_bytes), **options}, format="multipart")
    return client.post("/v1/search", options, format="json")


def _upload(data: bytes, name="probe.jpg"):
    return SimpleUploadedFile(name, data, content_type="image/jpeg")
