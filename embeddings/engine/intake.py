"""Image intake: bytes in memory -> BGR uint8 array, with limits.

Order matters for safety: byte size, then the magic bytes (we only hand data
to Pillow's parser for formats we accept), then the header's declared
dimensions, and only then the full decode. Everything stays in memory (a
BytesIO): nothing is written to disk or to a temp file.

Pillow's own decompression-bomb guard (Image.MAX_IMAGE_PIXELS) is a process
global that other code may rely on, so we leave it alone and do not depend
on it: `ImageLimits.max_pixels` is checked on the header of every image, and
Pillow's DecompressionBombError (raised above twice its global) is mapped to
the same error.
"""

from __future__ import annotations

import io
import logging
import struct
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import CorruptImage, ImageTooLarge, NotAnImage, TooManyPixels, UnsupportedFormat

logger = logging.getLogger(__name__)

# Formats that may be enabled, by Pillow plugin name. JPEG, PNG and WebP are the
# default; BMP, GIF (first frame), TIFF and AVIF can be switched on per
# deployment. HEIC needs the pillow-heif plugin, which is not installed.
ENABLEABLE_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "GIF", "TIFF", "AVIF"})
DEFAULT_FORMATS = frozenset({"JPEG", "PNG", "WEBP"})

# Exceptions Pillow's decoders raise on malformed data.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError,
                  KeyError, struct.error, zlib.error)


@dataclass(frozen=True)
class ImageLimits:
    """Limits checked before an image is fully decoded.

    max_pixels defaults to 40 MP: enough for 36 MP phone photos, while a decoded
    40 MP RGB image is 120 MB, the most one decode may cost.
    """

    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000
    formats: frozenset[str] = DEFAULT_FORMATS

    def __post_init__(self) -> None:
        unknown = set(self.formats) - ENABLEABLE_FORMATS
        if unknown:
            raise ValueError(f"unsupported formats {sorted(unknown)}; choose from {sorted(ENABLEABLE_FORMATS)}")
        if self.max_bytes < 1 or self.max_pixels < 1:
            raise ValueError("limits must be positive")
        object.__setattr__(self, "formats", frozenset(self.formats))


def decode_image(data: bytes, limits: ImageLimits | None = None) -> np.ndarray:
    """Decode `data` into a BGR uint8 (H, W, 3) array, EXIF orientation applied.

    Raises NotAnImage, UnsupportedFormat, ImageTooLarge, TooManyPixels or
    CorruptImage (all ImageError).
    """
    limits = limits or ImageLimits()
    if not data:
        raise NotAnImage("the image is empty (zero bytes)")
    if len(data) > limits.max_bytes:
        raise ImageTooLarge(f"the image is {len(data)} bytes; the limit is {limits.max_bytes}")
    image = _open_checked(data, limits)
    try:
        image.load()
        image = _apply_orientation(image)
        return _to_bgr(image)
    except Image.DecompressionBombError as exc:
        raise TooManyPixels("the image declares more pixels than allowed") from exc
    except MemoryError as exc:
        raise TooManyPixels("the image is too large to decode") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"the {image.format or 'image'} data is corrupt or truncated") from exc
    finally:
        image.close()


def sniff_format(data: bytes) -> str | None:
    """The image format named by the magic bytes, or None if not an image we know."""
    head = data[:32]
    for magic, name in _MAGIC:
        if head.startswith(magic):
            return name
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    if head[4:8] == b"ftyp":
        brand = head[8:12]
        if brand in (b"avif", b"avis"):
            return "AVIF"
        if brand in (b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"mif1", b"msf1"):
            return "HEIF"
    stripped = head.lstrip()
    if stripped.startswith((b"<svg", b"<?xml")) and b"<svg" in data[:4096]:
        return "SVG"
    return None


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG2000"),
    (b"\xff\x4f\xff\x51", "JPEG2000"),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "JPEGXL"),
    (b"\xff\x0a", "JPEGXL"),
    (b"8BPS", "PSD"),
    (b"\x00\x00\x01\x00", "ICO"),
    (b"qoif", "QOI"),
)


def _open_checked(data: bytes, limits: ImageLimits) -> Image.Image:
    """Parse the header only (Pillow is lazy) and enforce format and pixel limits."""
    fmt = sniff_format(data)
    if fmt is None:
        raise NotAnImage("the data is not a recognised image (JPEG, PNG or WebP expected)")
    if fmt not in limits.formats:
        accepted = ", ".join(sorted(limits.formats))
        raise UnsupportedFormat(f"{fmt} images are not accepted; send one of: {accepted}")
    # Only the accepted formats' parsers ever see the data. (Multi-picture
    # JPEGs from phones come back as format "MPO" through the JPEG parser.)
    try:
        image = Image.open(io.BytesIO(data), formats=sorted(limits.formats))
    except Image.DecompressionBombError as exc:
        raise TooManyPixels("the image declares more pixels than allowed") from exc
    except UnidentifiedImageError as exc:
        raise CorruptImage(f"the {fmt} header is corrupt") from exc
    except _DECODE_ERRORS as exc:
        raise CorruptImage(f"the {fmt} header is corrupt") from exc
    width, height = image.size
    if width < 1 or height < 1:
        image.close()
        raise CorruptImage("the image has no pixels")
    if width * height > limits.max_pixels:
        image.close()
        raise TooManyPixels(
            f"the image is {width}x{height} ({width * height} pixels); the limit is {limits.max_pixels}"
        )
    return image


def _apply_orientation(image: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF Orientation tag says (phones store sideways)."""
    try:
        return ImageOps.exif_transpose(image)
    except _DECODE_ERRORS:
        # A malformed EXIF block should not reject an otherwise good photo.
        logger.debug("ignoring unreadable EXIF orientation")
        return image


def _to_bgr(image: Image.Image) -> np.ndarray:
    """Any Pillow mode -> contiguous BGR uint8 (H, W, 3)."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        return _gray_to_bgr(_high_depth_to_uint8(np.asarray(image), mode))
    if mode == "P":
        image = image.convert("RGBA" if "transparency" in image.info else "RGB")
    elif mode in ("1", "L"):
        return _gray_to_bgr(np.asarray(image.convert("L")))
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = _composite_on_white(image)
    if image.mode != "RGB":
        image = image.convert("RGB")
    rgb = np.asarray(image)
    return np.ascontiguousarray(rgb[:, :, ::-1])


def _high_depth_to_uint8(array: np.ndarray, mode: str) -> np.ndarray:
    """16-bit (and 32-bit int) grey scale to 8 bits by its top byte.

    Pillow's convert("L") clips these at 255 instead, which turns most
    16-bit photos white.
    """
    if mode == "F":
        return np.clip(array, 0, 255).astype(np.uint8)
    values = array.astype(np.int64)
    if mode == "I" and values.max(initial=0) <= 255:
        return np.clip(values, 0, 255).astype(np.uint8)  # "I" holding 8-bit data
    return (np.clip(values, 0, 65535) >> 8).astype(np.uint8)


def _gray_to_bgr(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


def _composite_on_white(image: Image.Image) -> Image.Image:
    """Transparent pixels become white, as a browser shows them on a page."""
    rgba = image.convert("RGBA")
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")
