"""Labelled photos (one folder per person, LFW's layout) through the engine: for calibration and benchmarks."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .engine import AnalyzeOptions, FaceEngine
from .intake import ImageLimits, decode_image
from .quality import FaceQuality


@dataclass(frozen=True)
class LabelledFace:
    """The largest face of one photo of a known person."""

    person: str
    path: Path
    embedding: np.ndarray = field(repr=False)
    quality: FaceQuality


def people_photos(folder: str | Path, *, min_photos: int = 1) -> dict[str, list[Path]]:
    """One-folder-per-person photos (LFW's layout): {person: [photos, sorted]}."""
    people = {}
    for person in sorted(p for p in Path(folder).iterdir() if p.is_dir()):
        photos = sorted(p for p in person.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png", ".webp"))
        if len(photos) >= min_photos:
            people[person.name] = photos
    return people


def embed_people(engine: FaceEngine, people: dict[str, list[Path]], *, threads: int = 2,
                 progress: Callable[[int, int], None] | None = None) -> list[LabelledFace]:
    """The largest face of every photo (photos without a face are skipped), in the people's order."""
    limits = ImageLimits(max_bytes=64 * 1024 * 1024, max_pixels=100_000_000)
    jobs = [(person, path) for person, photos in people.items() for path in photos]

    def one(job: tuple[str, Path]) -> LabelledFace | None:
        person, path = job
        faces = engine.analyze(decode_image(path.read_bytes(), limits), AnalyzeOptions(max_faces=1)).faces
        return LabelledFace(person, path, faces[0].embedding, faces[0].quality) if faces else None

    found: list[LabelledFace] = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for done, face in enumerate(pool.map(one, jobs), start=1):
            if face is not None:
                found.append(face)
            if progress is not None and (done % 250 == 0 or done == len(jobs)):
                progress(done, len(jobs))
    return found
