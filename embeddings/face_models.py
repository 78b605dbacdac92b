"""The face engine as the Django side sees it: configured from settings, loaded once."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings


def pack_directory() -> Path | None:
    """The configured model pack folder, in either layout insightface uses."""
    root = Path(settings.FACE_MODEL_ROOT)
    for candidate in (root / settings.FACE_MODEL_PACK, root / "models" / settings.FACE_MODEL_PACK):
        if candidate.is_dir() and any(candidate.glob("*.onnx")):
            return candidate
    return None


def model_status() -> tuple[bool, str]:
    pack = pack_directory()
    if pack is None:
        return False, (f"model pack '{settings.FACE_MODEL_PACK}' not found under "
                       f"{settings.FACE_MODEL_ROOT} (see docs/MODELS.md)")
    return True, f"{settings.FACE_MODEL_PACK} at {pack}"
