"""Measure the installed model pack's impostor scores on labelled photos and store its calibration.

    python manage.py calibrate_model_pack --photos /data/lfw [--output path] [--limit-people N]

--photos: one folder per person (LFW's layout: `Name/Name_0001.jpg`). Every
pair of faces of two different people is scored; the histogram and the
highest scores go into the calibration (embeddings/engine/calibration.py),
written with the pack's model id to --output, by default `calibration.json`
in the pack's own folder (where the engine looks for it). A pack on read-only
storage takes --output <folder>/<pack>.calibration.json in a folder the
engine is configured to search. Photos stay where they are; nothing else is
written. docs/MODELS.md, "Calibration", says how many photos are enough.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from embeddings.engine.calibration import FILE_NAME, CalibrationError, calibrate
from embeddings.engine.labelled import embed_people, people_photos
from embeddings.face_engine import face_engine

REPORTED_SIZES = (100, 1_000, 10_000, 100_000)


class Command(BaseCommand):
    help = "Compute the installed model pack's impostor-score calibration from one-folder-per-person photos."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--photos", required=True, type=Path, help="a folder of one folder per person")
        parser.add_argument("--output", type=Path, help=f"where to write (default: the pack's {FILE_NAME})")
        parser.add_argument("--limit-people", type=int, help="use only the first N people (a quick run)")
        parser.add_argument("--threads", type=int, default=2, help="photos analysed at once")

    def handle(self, *args, **options) -> None:
        folder: Path = options["photos"]
        if not folder.is_dir():
            raise CommandError(f"{folder} is not a folder")
        people = people_photos(folder)
        if options["limit_people"]:
            people = dict(list(people.items())[:options["limit_people"]])
        if len(people) < 2:
            raise CommandError("need photos of at least two people (one folder per person)")
        engine = face_engine()
        started = time.perf_counter()
        faces = embed_people(engine, people, threads=options["threads"],
                             progress=lambda done, total: self.stderr.write(f"  {done}/{total} photos"))
        try:
            calibration = calibrate(np.stack([f.embedding for f in faces]) if faces else np.empty((0, 1)),
                                    [f.person for f in faces], model_id=engine.model_id,
                                    source=f"{folder.name}: {len(faces)} faces of {len(people)} people")
        except CalibrationError as exc:
            raise CommandError(f"{exc} (found {len(faces)} faces of {len(people)} people)") from exc
        output = options["output"] or engine.files.folder / FILE_NAME
        try:
            calibration.save(output)
        except OSError as exc:
            raise CommandError(f"cannot write {output} ({exc.strerror}); choose another --output") from exc
        self._summary(calibration, output, time.perf_counter() - started)

    def _summary(self, calibration, output: Path, seconds: float) -> None:
        self.stdout.write(f"{calibration.model_id}: {calibration.count:,} impostor pairs from {calibration.source} "
                          f"in {seconds:.0f} s -> {output}")
        for fmr in (1e-3, 1e-4, 1e-5, 1e-6):
            self.stdout.write(f"  FMR {fmr:.0e}: threshold {calibration.threshold_for_fmr(fmr):.3f}")
        for size in REPORTED_SIZES:
            self.stdout.write(f"  FPIR 1 % over {size:,} faces: threshold "
                              f"{calibration.threshold_for_fpir(0.01, size):.3f}")
