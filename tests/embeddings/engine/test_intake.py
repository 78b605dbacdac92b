"""Image intake: formats, modes, orientation, limits and hostile input."""

from __future__ import annotations

import io
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image

from embeddings.engine import (
    CorruptImage,
    ImageError,
    ImageLimits,
    ImageTooLarge,
    NotAnImage,
    TooManyPixels,
    UnsupportedFormat,
    decode_image,
)
from embeddings.engine.errors import ALL_ERRORS as ENGINE_ERRORS
from faceservice.outbound.errors import FetchFailed, FetchRefused, FetchTimeout, S3ObjectNotFound
from tests.embeddings.engine.conftest import FACES, HAVE_SHARED

pytestmark = pytest.mark.pure
# Every error on an image's way in, the engine's and outbound fetching's: their codes are an API contract.
ALL_ERRORS = (*ENGINE_ERRORS, FetchRefused, FetchFailed, FetchTimeout, S3ObjectNotFound)


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    out = io.BytesIO()
    image.save(out, format=fmt, **kwargs)
    return out.getvalue()


def _rgb_pattern(width: int = 64, height: int = 48) -> Image.Image:
    """Left half pure red, right half pure blue: orientation and channels are visible."""
    array = np.zeros((height, width, 3), dtype=np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2:] = (0, 0, 255)
    return Image.fromarray(array, "RGB")


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(width: int, height: int, idat: bytes, color_type: int = 0, depth: int = 8) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, depth, color_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
            + _png_chunk(b"IEND", b""))


def _zero_rows_png(width: int, height: int) -> bytes:
    """A real, valid greyscale PNG whose pixel data deflates ~1000:1 (a bomb)."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte + pixels
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    return _png(width, height, b"".join(parts))



# Good input ---------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_default_formats_decode_to_bgr(fmt, no_new_temp_files):
    data = _encode(_rgb_pattern(), fmt, **({"quality": 95} if fmt != "PNG" else {}))
    image = decode_image(data)
    assert image.shape == (48, 64, 3) and image.dtype == np.uint8 and image.flags["C_CONTIGUOUS"]
    left, right = image[24, 5].astype(int), image[24, 60].astype(int)
    assert left[2] > 200 and left[0] < 60  # red is the last channel in BGR
    assert right[0] > 200 and right[2] < 60


def test_exif_orientation_is_applied():
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    data = _encode(_rgb_pattern(64, 48), "JPEG", quality=95, exif=exif.tobytes())
    image = decode_image(data)
    assert image.shape == (64, 48, 3)
    assert image[5, 24, 2] > 200 and image[60, 24, 0] > 200  # red now on top, blue below


def test_grayscale_and_1bit():
    gray = Image.fromarray(np.tile(np.arange(0, 256, 4, dtype=np.uint8), (10, 1)), "L")
    image = decode_image(_encode(gray, "PNG"))
    assert image.shape == (10, 64, 3) and (image[:, :, 0] == image[:, :, 2]).all()
    assert image[0, 63, 0] == 252
    bits = decode_image(_encode(gray.convert("1"), "PNG"))
    assert set(np.unique(bits)) <= {0, 255}


def test_sixteen_bit_grayscale_keeps_its_range():
    values = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (8, 1))
    data = _encode(Image.fromarray(values), "PNG")
    assert Image.open(io.BytesIO(data)).mode.startswith("I")  # really 16-bit on disk
    image = decode_image(data)
    assert image[0, 0, 0] == 0 and image[0, 63, 0] == 255 and 120 <= image[0, 32, 0] <= 135


def test_sixteen_bit_rgb_png():
    # Built by hand: Pillow cannot write 16-bit RGB. Rows: filter 0, then R,G,B as 16-bit big-endian.
    row = b"\x00" + struct.pack(">HHH", 65535, 0, 32768) * 4
    image = decode_image(_png(4, 2, zlib.compress(row * 2), color_type=2, depth=16))
    assert image.shape == (2, 4, 3) and tuple(image[0, 0]) == (128, 0, 255)


def test_palette_with_transparency_and_rgba_on_white():
    rgba = np.zeros((20, 20, 4), dtype=np.uint8)
    rgba[:, :10] = (0, 0, 0, 0)  # transparent left half
    rgba[:, 10:] = (0, 255, 0, 255)  # opaque green right half
    image = decode_image(_encode(Image.fromarray(rgba, "RGBA"), "PNG"))
    assert tuple(image[5, 2]) == (255, 255, 255) and tuple(image[5, 15]) == (0, 255, 0)
    palette = Image.fromarray(rgba, "RGBA").convert("P")
    palette.info["transparency"] = palette.getpixel((2, 5))
    image = decode_image(_encode(palette, "PNG", transparency=palette.getpixel((2, 5))))
    assert tuple(image[5, 2]) == (255, 255, 255)
    la = decode_image(_encode(Image.fromarray(rgba, "RGBA").convert("LA"), "PNG"))
    assert tuple(la[5, 2]) == (255, 255, 255)


def test_cmyk_jpeg():
    image = decode_image(_encode(_rgb_pattern().convert("CMYK"), "JPEG", quality=95))
    assert image.shape == (48, 64, 3) and image[24, 5, 2] > 200


@pytest.mark.skipif(not HAVE_SHARED, reason="shared photos absent")
def test_real_rgba_png():
    image = decode_image((FACES / "known-people" / "more" / "32bit.png").read_bytes())
    assert image.ndim == 3 and image.shape[2] == 3


def test_optional_formats_can_be_enabled():
    gif = _encode(_rgb_pattern(), "GIF")
    with pytest.raises(UnsupportedFormat):
        decode_image(gif)
    image = decode_image(gif, ImageLimits(formats=frozenset({"GIF"})))
    assert image.shape == (48, 64, 3)
    with pytest.raises(ValueError):
        ImageLimits(formats=frozenset({"EPS"}))


# Hostile or broken input ------------------------------------------------------

def _expect(error: type[ImageError], data: bytes, limits: ImageLimits | None = None) -> ImageError:
    started = time.perf_counter()
    with pytest.raises(error) as info:
        decode_image(data, limits)
    assert time.perf_counter() - started < 2.0  # refused quickly, not after a full decode
    return info.value


def test_zero_bytes(no_new_temp_files):
    assert _expect(NotAnImage, b"").code == "not_an_image"


def test_decompression_bomb_header_only(no_new_temp_files):
    # 100,000 x 100,000 declared in a 70-byte file.
    bomb = _png(100_000, 100_000, zlib.compress(b"\x00" * 100))
    assert len(bomb) < 200
    error = _expect(TooManyPixels, bomb)
    assert error.code == "too_many_pixels" and error.http_status == 413


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_real_decompression_bomb_is_refused_before_decoding(no_new_temp_files):
    # A valid 12,000 x 12,000 PNG (144 MP; under Pillow's own 2x bomb error)
    # that inflates ~1000:1: refused on its header against our 40 MP limit.
    bomb = _zero_rows_png(12_000, 12_000)
    assert len(bomb) < 300_000
    _expect(TooManyPixels, bomb)
    # With a limit that admits it, the same bytes do decode: the data is real.
    small = _zero_rows_png(2_000, 1_000)
    assert decode_image(small, ImageLimits(max_pixels=2_000_000)).shape == (1_000, 2_000, 3)
    _expect(TooManyPixels, small, ImageLimits(max_pixels=1_999_999))


def test_huge_dimension_png_header(no_new_temp_files):
    _expect(TooManyPixels, _png(2**31 - 1, 2**31 - 1, b""))
    _expect(TooManyPixels, _png(1, 50_000_000, b""))


def test_truncated_jpeg(no_new_temp_files):
    data = _encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (200, 200, 3), dtype=np.uint8)),
                   "JPEG", quality=90)
    error = _expect(CorruptImage, data[: len(data) // 2])
    assert error.code == "corrupt_image" and error.http_status == 422
    _expect(CorruptImage, data[:20])  # header cut short


def test_corrupt_png_data(no_new_temp_files):
    data = bytearray(_encode(_rgb_pattern(), "PNG"))
    data[60:80] = b"\xff" * 20
    _expect(CorruptImage, bytes(data))


@pytest.mark.parametrize("data, error", [
    (b"<?php system($_GET['c']); ?>", NotAnImage),
    (b"<html><script>alert(1)</script></html>", NotAnImage),
    (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", NotAnImage),
    (b"PK\x03\x04" + b"\x00" * 100, NotAnImage),
    (b"GIF89a/*\x00\x00*/=1;alert(1)//", UnsupportedFormat),  # GIF/JavaScript polyglot
    (b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>', UnsupportedFormat),
    (b"\x00\x00\x00\x20ftypheic" + b"\x00" * 40, UnsupportedFormat),
    (b"BM" + b"\x00" * 12 + struct.pack("<I", 40) + b"\x00" * 40, UnsupportedFormat),
    (b"\xff\xd8\xff\xe0" + b"<script>alert(1)</script>" * 4, CorruptImage),  # JPEG magic, no JPEG
], ids=["php", "html", "pdf", "zip", "gif-js", "svg", "heic", "bmp", "jpeg-magic-html"])
def test_polyglots_and_non_images(data, error, no_new_temp_files):
    _expect(error, data)


def test_jpeg_with_a_zip_appended_decodes_only_the_pixels():
    data = _encode(_rgb_pattern(), "JPEG", quality=95) + b"PK\x03\x04" + b"A" * 1000
    assert decode_image(data).shape == (48, 64, 3)


def test_byte_limit_checked_first():
    data = _encode(_rgb_pattern(), "PNG")
    error = _expect(ImageTooLarge, data, ImageLimits(max_bytes=len(data) - 1))
    assert error.code == "image_too_large" and error.http_status == 413
    assert decode_image(data, ImageLimits(max_bytes=len(data))).shape == (48, 64, 3)


def test_error_codes_and_statuses_are_stable():
    table = {cls.code: cls.http_status for cls in ALL_ERRORS}
    assert table == {
        "not_an_image": 415, "unsupported_format": 415, "image_too_large": 413, "too_many_pixels": 413,
        "corrupt_image": 422, "fetch_refused": 422, "fetch_failed": 422, "fetch_timeout": 504,
        "s3_object_not_found": 422, "models_unavailable": 503,
    }
    assert all(issubclass(cls, ImageError) for cls in ALL_ERRORS)


def test_messages_hold_no_image_bytes():
    secret = b"\xff\xd8\xff\xe0SECRET-PAYLOAD-1234567890"
    with pytest.raises(ImageError) as info:
        decode_image(secret)
    assert "SECRET" not in str(info.value) and "SECRET" not in repr(info.value.as_dict())
