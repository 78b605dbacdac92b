"""Uploads stay in memory: never a temp file, and too large is a clean 413."""

from __future__ import annotations

import io

from django.conf import settings
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopUpload
from django.http.multipartparser import MultiPartParser as DjangoMultiPartParser
from django.http.multipartparser import MultiPartParserError
from rest_framework.exceptions import ParseError
from rest_framework.parsers import DataAndFiles, MultiPartParser

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

    # False: a file over the limit stops the request at once. True (views taking
    # many files, see ManyFilesMultiPartParser): its bytes are dropped as they
    # arrive and it becomes an OversizedUpload, so the view can name its asset.
    keep_oversized = False

    def handle_raw_input(self, input_data, META, content_length, boundary, encoding=None):
        # Each file is capped below, but Django lets a request carry up to
        # DATA_UPLOAD_MAX_NUMBER_FILES of them: cap the whole body as well, before reading it.
        if content_length > settings.MAX_REQUEST_BYTES:
            raise PayloadTooLarge()
        return None

    def new_file(self, *args, **kwargs):
        super().new_file(*args, **kwargs)
        self.buffer = io.BytesIO()
        self.oversized = False
        self.limit = settings.MAX_IMAGE_BYTES

    def receive_data_chunk(self, raw_data, start):
        if self.oversized:
            return None
        if self.buffer.tell() + len(raw_data) > self.limit:
            self.buffer = io.BytesIO()
            if not self.keep_oversized:
                raise UploadedFileTooLarge(too_large_message(self.limit))
            self.oversized = True
            return None
        self.buffer.write(raw_data)
        return None

    def file_complete(self, file_size):
        self.buffer.seek(0)
        upload_class = OversizedUpload if self.oversized else InMemoryUploadedFile
        return upload_class(
            file=self.buffer, field_name=self.field_name, name=self.file_name,
            content_type=self.content_type, size=file_size, charset=self.charset,
            content_type_extra=self.content_type_extra,
        )


class KeepOversizedUploadHandler(InMemoryOnlyUploadHandler):
    keep_oversized = True


class OversizedUpload(InMemoryUploadedFile):
    """A file part over MAX_IMAGE_BYTES: its bytes were dropped as they came; reading it raises."""

    def read(self, *args, **kwargs):
        raise UploadedFileTooLarge(too_large_message(settings.MAX_IMAGE_BYTES))


def too_large_message(limit: int) -> str:
    return f"An uploaded file is larger than {limit} bytes."


class ManyFilesMultiPartParser(MultiPartParser):
    """Multipart for a view that takes many files at once (index jobs).

    The same in-memory handling and limits as every upload, except that one
    file over the per-file limit does not end the request there: the view
    reads each file and reports every refused one with the asset it was for.
    The whole body stays capped (MAX_REQUEST_BYTES, DATA_UPLOAD_MAX_NUMBER_FILES).
    """

    def parse(self, stream, media_type=None, parser_context=None):
        request = parser_context["request"]
        meta = {**request.META, "CONTENT_TYPE": media_type}
        encoding = parser_context.get("encoding") or settings.DEFAULT_CHARSET
        handlers = [KeepOversizedUploadHandler(request)]
        try:
            data, files = DjangoMultiPartParser(meta, stream, handlers, encoding).parse()
        except MultiPartParserError as exc:
            raise ParseError(f"Multipart form parse error - {exc}") from exc
        return DataAndFiles(data, files)


__all__ = ["InMemoryOnlyUploadHandler", "ManyFilesMultiPartParser", "OversizedUpload", "StopUpload"]
