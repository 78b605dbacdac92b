"""Engine configuration: which model pack, where, and how to run it.

Plain frozen dataclasses, so a config is hashable and `get_engine(config)` can
cache one engine per distinct configuration. `from_env` reads the same
variables `./dev` sets (FACE_MODEL_ROOT, FACE_MODEL_PACK), so Django settings
can either build an EngineConfig themselves or delegate to it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PACK = "buffalo_l"
DEFAULT_MODEL_ROOT = "/var/lib/faceservice/models"
DEVICES = ("cpu", "cuda", "auto")


@dataclass(frozen=True)
class EngineConfig:
    """How to load and run a model pack.

    model_root / pack: the pack lives in `<root>/<pack>/` or `<root>/models/<pack>/`.
    device: "cpu" (default), "cuda" (CUDA if onnxruntime has it, else CPU with a
        warning) or "auto" (CUDA when present).
    intra_op_threads / inter_op_threads: onnxruntime thread pools; 0 = its default
        (one thread per physical core). Set intra_op_threads=1 when running one
        engine per Celery worker process on a shared box.
    det_size: detector input (width, height); SCRFD works at 320 or 640 (see docs).
    rec_batch_size: upper bound on faces per recognizer run (memory bound).
    calibration_dir: a folder searched for `<pack>.calibration.json` before the
        pack's own `calibration.json` (for packs on read-only storage; see
        calibration.py). None: the pack's folder only.
    """

    model_root: str = DEFAULT_MODEL_ROOT
    pack: str = DEFAULT_PACK
    device: str = "cpu"
    intra_op_threads: int = 0
    inter_op_threads: int = 0
    det_size: tuple[int, int] = (640, 640)
    rec_batch_size: int = 32
    warmup: bool = True
    calibration_dir: str | None = None

    def __post_init__(self) -> None:
        if self.device not in DEVICES:
            raise ValueError(f"device must be one of {DEVICES}, not {self.device!r}")
        width, height = self.det_size
        if width % 32 or height % 32 or width <= 0 or height <= 0:
            raise ValueError("det_size values must be positive multiples of 32")
        if self.rec_batch_size < 1:
            raise ValueError("rec_batch_size must be at least 1")
        if self.intra_op_threads < 0 or self.inter_op_threads < 0:
            raise ValueError("thread counts must be >= 0 (0 = onnxruntime default)")
        # Normalise so that equal configs hash equal (get_engine caches on them).
        object.__setattr__(self, "model_root", str(Path(self.model_root).expanduser()))
        object.__setattr__(self, "det_size", (int(width), int(height)))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> EngineConfig:
        """Build a config from FACE_* environment variables (all optional)."""
        env = os.environ if environ is None else environ
        kwargs: dict[str, object] = {}
        if env.get("FACE_MODEL_ROOT"):
            kwargs["model_root"] = env["FACE_MODEL_ROOT"]
        if env.get("FACE_MODEL_PACK"):
            kwargs["pack"] = env["FACE_MODEL_PACK"]
        if env.get("FACE_DEVICE"):
            kwargs["device"] = env["FACE_DEVICE"].lower()
        if env.get("FACE_INTRA_OP_THREADS"):
            kwargs["intra_op_threads"] = int(env["FACE_INTRA_OP_THREADS"])
        if env.get("FACE_INTER_OP_THREADS"):
            kwargs["inter_op_threads"] = int(env["FACE_INTER_OP_THREADS"])
        if env.get("FACE_DET_SIZE"):
            kwargs["det_size"] = _parse_size(env["FACE_DET_SIZE"])
        if env.get("FACE_CALIBRATION_DIR"):
            kwargs["calibration_dir"] = env["FACE_CALIBRATION_DIR"]
        return cls(**kwargs)  # type: ignore[arg-type]


def _parse_size(text: str) -> tuple[int, int]:
    """'640' -> (640, 640); '640x480' -> (640, 480)."""
    parts = text.lower().replace(",", "x").split("x")
    if len(parts) == 1:
        return int(parts[0]), int(parts[0])
    return int(parts[0]), int(parts[1])
