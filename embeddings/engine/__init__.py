"""Face engine: model packs, image intake and face analysis.

Pure Python (no Django): the API, the Celery workers, tests and benchmarks all
use it the same way.

    from embeddings.engine import EngineConfig, get_engine, decode_image, AnalyzeOptions
    engine = get_engine(EngineConfig(model_root="/models", pack="buffalo_l"))
    analysis = engine.analyze(decode_image(data), AnalyzeOptions(max_faces=10))
    engine.model_id, engine.dimension   # from the loaded model files

Heavy modules (onnxruntime, insightface) load on first use of the engine, so
importing the errors or the intake functions stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import DEFAULT_PACK, EngineConfig
from .errors import (
    CorruptImage,
    ImageError,
    ImageTooLarge,
    ModelsUnavailable,
    NotAnImage,
    TooManyPixels,
    UnsupportedFormat,
)

if TYPE_CHECKING:
    from .engine import (
        LEFT_OUT_REASONS,
        Analysis,
        AnalyzeOptions,
        DetectedFace,
        Detection,
        Face,
        FaceEngine,
        LeftOutFace,
        clear_engine_cache,
        get_engine,
    )
    from .intake import ImageLimits, decode_image
    from .quality import QUALITY_FILTERS, FaceQuality

_LAZY = {
    "Analysis": "engine", "AnalyzeOptions": "engine", "Face": "engine", "FaceEngine": "engine",
    "LeftOutFace": "engine", "LEFT_OUT_REASONS": "engine", "get_engine": "engine",
    "clear_engine_cache": "engine", "Detection": "engine", "DetectedFace": "engine",
    "FaceQuality": "quality", "QUALITY_FILTERS": "quality",
    "ImageLimits": "intake", "decode_image": "intake",
}

# Names in _LAZY load their module on first access.
__all__ = [
    "DEFAULT_PACK",
    "LEFT_OUT_REASONS",
    "QUALITY_FILTERS",
    "Analysis",
    "AnalyzeOptions",
    "CorruptImage",
    "DetectedFace",
    "Detection",
    "EngineConfig",
    "Face",
    "FaceEngine",
    "FaceQuality",
    "ImageError",
    "ImageLimits",
    "ImageTooLarge",
    "LeftOutFace",
    "ModelsUnavailable",
    "NotAnImage",
    "TooManyPixels",
    "UnsupportedFormat",
    "clear_engine_cache",
    "decode_image",
    "get_engine",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
