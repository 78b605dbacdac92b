"""Find, check and identify an insightface model pack on disk.

A pack is a folder of ONNX files (insightface's layout: buffalo_l holds
det_10g.onnx, w600k_r50.onnx and three models we do not use). We pick the
detector and the recognizer by their graph signatures, the same rule
insightface's ModelRouter uses, but by reading the graph only, so that the
unused models never get an onnxruntime session. Nothing here downloads: a
missing or unreadable pack is a ModelsUnavailable that says where files go.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path

from .errors import ModelsUnavailable

logger = logging.getLogger(__name__)

# SCRFD exports: 6/10 outputs without landmarks, 9/15 with. Alignment needs the
# five landmarks, so only 9 and 15 qualify.
_DETECTOR_OUTPUTS_WITH_LANDMARKS = (9, 15)
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class PackFiles:
    """The two files of a pack the engine uses, and their identity."""

    pack: str
    folder: Path
    detector: Path
    recognizer: Path
    detector_sha256: str
    recognizer_sha256: str

    @property
    def short_hash(self) -> str:
        """8 hex digits over both files' bytes: changes when either file changes."""
        digest = hashlib.sha256()
        digest.update(bytes.fromhex(self.detector_sha256))
        digest.update(bytes.fromhex(self.recognizer_sha256))
        return digest.hexdigest()[:8]

    @property
    def model_id(self) -> str:
        return f"{self.pack}:{self.short_hash}"


def candidate_folders(model_root: str | Path, pack: str) -> list[Path]:
    """Both accepted layouts, in the order they are tried."""
    root = Path(model_root).expanduser().resolve()
    return [root / pack, root / "models" / pack]


def locate_pack(model_root: str | Path, pack: str) -> PackFiles:
    """Return the detector and recognizer of `pack`, or raise ModelsUnavailable."""
    if not pack or "/" in pack or "\\" in pack or pack in (".", ".."):
        raise ModelsUnavailable(f"invalid model pack name {pack!r}: use a folder name")
    folders = candidate_folders(model_root, pack)
    folder = next((f for f in folders if f.is_dir()), None)
    if folder is None:
        raise ModelsUnavailable(_missing_message(pack, folders))
    detector, recognizer = _classify(folder, pack)
    return PackFiles(
        pack=pack,
        folder=folder,
        detector=detector,
        recognizer=recognizer,
        detector_sha256=file_sha256(detector),
        recognizer_sha256=file_sha256(recognizer),
    )


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as stream:
            for chunk in iter(lambda: stream.read(_HASH_CHUNK), b""):
                digest.update(chunk)
    except OSError as exc:
        raise ModelsUnavailable(f"cannot read model file {path}: {exc.strerror}") from exc
    return digest.hexdigest()


def _missing_message(pack: str, folders: list[Path]) -> str:
    where = " or ".join(str(f) for f in folders)
    return (
        f"face model pack {pack!r} not found: put its .onnx files (a SCRFD detector with "
        f"landmarks and an ArcFace-style recognizer) in {where}, or point "
        "FACE_MODEL_ROOT / FACE_MODEL_PACK at an existing pack. Models are never "
        "downloaded at run time; see docs/MODELS.md."
    )


def _classify(folder: Path, pack: str) -> tuple[Path, Path]:
    """Pick (detector, recognizer) among the folder's ONNX files."""
    onnx_files = sorted(folder.glob("*.onnx"))
    if not onnx_files:
        raise ModelsUnavailable(
            f"model pack folder {folder} holds no .onnx files: copy the pack's files "
            "there (see docs/MODELS.md)"
        )
    detectors: list[Path] = []
    recognizers: list[Path] = []
    for path in onnx_files:
        kind = _model_kind(path)
        if kind == "detection":
            detectors.append(path)
        elif kind == "recognition":
            recognizers.append(path)
    if not detectors or not recognizers:
        missing = "a face detector (SCRFD with landmarks)" if not detectors else "a face recognizer"
        raise ModelsUnavailable(
            f"model pack {pack!r} in {folder} lacks {missing}: the pack must hold both "
            "(see docs/MODELS.md)"
        )
    # Same tie-break as insightface's FaceAnalysis: first file in sorted order.
    if len(detectors) > 1 or len(recognizers) > 1:
        logger.warning("pack %s has several candidates; using %s and %s",
                       pack, detectors[0].name, recognizers[0].name)
    return detectors[0], recognizers[0]


def _model_kind(path: Path) -> str | None:
    """'detection', 'recognition' or None, from the graph's inputs and outputs.

    Mirrors insightface's ModelRouter so a pack routes the same way here as in
    FaceAnalysis, but reads only the graph (no onnxruntime session).
    """
    import onnx  # heavy import, only needed at load time

    try:
        model = onnx.load_model(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises assorted errors on garbage
        raise ModelsUnavailable(f"model file {path} is unreadable or not ONNX ({type(exc).__name__})") from exc
    graph = model.graph
    inputs = [i for i in graph.input if i.name not in {t.name for t in graph.initializer}]
    if not inputs:
        return None
    dims = [d.dim_value or None for d in inputs[0].type.tensor_type.shape.dim]
    if len(graph.output) >= 5:
        return "detection" if len(graph.output) in _DETECTOR_OUTPUTS_WITH_LANDMARKS else None
    if len(inputs) != 1 or len(graph.output) != 1 or len(dims) != 4:
        return None
    height, width = dims[2], dims[3]
    if height is None or height != width or height in (96, 192):
        return None  # dynamic, or genderage/attributes (96), landmarks (192)
    if height >= 112 and height % 16 == 0:
        return "recognition"
    return None
