"""onnxruntime sessions with the configured providers and thread pools."""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from .config import EngineConfig
from .errors import ModelsUnavailable

logger = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"


def resolve_providers(device: str) -> list[str]:
    """Providers for `device`; CPU always last as the fallback.

    "cuda" asked for on a build without CUDA falls back to CPU with a warning
    rather than failing: a worker pool can then run mixed hardware from one
    configuration. `FaceEngine.providers` tells which one is in use.
    """
    available = ort.get_available_providers()
    if device in ("cuda", "auto") and CUDA in available:
        return [CUDA, CPU]
    if device == "cuda":
        logger.warning("CUDA requested but onnxruntime has no CUDAExecutionProvider; using CPU")
    return [CPU]


def session_options(config: EngineConfig) -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.intra_op_num_threads = config.intra_op_threads
    options.inter_op_num_threads = config.inter_op_threads
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # onnxruntime's warnings are noise for operators
    return options


def create_session(path: Path, config: EngineConfig, providers: list[str]) -> ort.InferenceSession:
    """An InferenceSession for `path`, or ModelsUnavailable if it will not load."""
    if CUDA in providers:
        # Lets onnxruntime find pip-installed CUDA/cuDNN libraries.
        preload = getattr(ort, "preload_dlls", None)
        if callable(preload):
            preload()
    try:
        return ort.InferenceSession(str(path), sess_options=session_options(config), providers=providers)
    except Exception as exc:  # onnxruntime raises its own assorted exception types
        raise ModelsUnavailable(f"onnxruntime could not load {path}: {type(exc).__name__}") from exc
