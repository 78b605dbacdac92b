"""Uploads stay in memory: never a temp file, and too large is a clean 413."""

from __future__ import annotations

import io

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload

from faceservice.errors import PayloadTooLarge


class UploadedFileTooLarge(PayloadTooLarge):
    """One uploaded file is over MAX_IMAGE_BYTES (the whole body has its own limit)."""

    code = "image_too_large"


class InMemoryOnlyUploadHandler(FileUploadHandler):
    """Collects each uploaded file in a BytesIO and refuses it past the limit.

    Django's defaults hand files above FILE_UPLOAD_MAX_MEMORY_SIZE to
    TemporaryFileUploadHandler, which writes them to disk: search and compare
    images must never touch disk, so this is the only handler configured.
    """

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # Each file is capped below, but Django lets a request carry up to
        # DATA_UPLOAD_MAX_NUMBER_FILES of them: cap the whole body as well, before reading it.
        if content_length > settings.MAX_REQUEST_BYTES:
            raise PayloadTooLarge()
        return None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.buffer = io.BytesIO()
        self.limit = settings.MAX_IMAGE_BYTES

    def receive_data_chunk(self, raw_data, start):
        if self.buffer.tell() + len(raw_data) > self.limit:
            self.buffer = io.BytesIO()
            raise UploadedFileTooLarge(f"An uploaded file is larger than {self.limit} bytes.")
        self.buffer.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.buffer.seek(0)
        return InMemoryUploadedFile(
            file=self.buffer, field_name=self.field_name, name=self.file_name,
            content_type=self.content_type, size=file_size, charset=self.charset,
            content_type_extra=self.content_type_extra,
        )


__all__ = ["InMemoryOnlyUploadHandler", "StopUpload"]
