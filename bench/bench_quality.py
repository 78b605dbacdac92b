"""Does a quality filter at enrolment lower FNIR at a fixed FPIR? And what does each level leave out? (LFW dev-train)

    .venv/bin/python bench/bench_quality.py [--det 640] [--target-fpir 0.01] [--json out.json]

What it does (docs/MODELS.md, "Face quality"):
1. Embeds the largest face of every LFW dev-train photo with the test pack, with
   its quality (in memory; nothing is written), 2 threads.
2. Per filter level (NONE, LOW, MEDIUM, HIGH; quality.BARS): the share of
   faces each level leaves out, by reason.
3. Open-set identification: people with two or more photos are enrolled with
   every photo but their last that passes the level (none passing: not
   enrolled, so their probe can only be missed); their last photo is the
   genuine probe. People with one photo are impostor probes (never enrolled).
   Probes are not filtered. The threshold is set where FPIR = --target-fpir on
   the impostor probes (empirically, per level), and FNIR is the share of
   genuine probes whose best match is not their person at or above it.
AUTO is the level with the lowest FNIR here (quality.AUTO_LEVEL).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_calibration import embed_lfw, log
from embeddings.engine.labelled import LabelledFace
from embeddings.engine.quality import BARS, HIGH, LOW, MEDIUM, NONE, QualityBar

LEVELS = (NONE, LOW, MEDIUM, HIGH)


def failure(face: LabelledFace, bar: QualityBar) -> str | None:
    """Why `bar` leaves this face out (the engine's order of checks), or None."""
    if face.quality.det_score < bar.min_det_score:
        return "low_score"
    if face.quality.size < bar.min_size:
        return "too_small"
    return bar.failure(face.quality)


def left_out_shares(faces: list[LabelledFace]) -> dict[str, dict[str, float]]:
    shares = {}
    for level in LEVELS:
        reasons = Counter(failure(f, BARS[level]) for f in faces)
        shares[level] = {reason or "kept": count / len(faces) for reason, count in sorted(reasons.items(),
                                                                                         key=lambda kv: -kv[1])}
    return shares


def identification(faces: list[LabelledFace], bar: QualityBar, target_fpir: float) -> dict:
    by_person: dict[str, list[LabelledFace]] = {}
    for face in faces:
        by_person.setdefault(face.person, []).append(face)
    gallery, labels, genuine, impostors, not_enrolled = [], [], [], [], 0
    for person, photos in sorted(by_person.items()):
        if len(photos) == 1:
            impostors.append(photos[0])
            continue
        genuine.append(photos[-1])
        enrolled = [f for f in photos[:-1] if failure(f, bar) is None]
        not_enrolled += not enrolled
        gallery.extend(f.embedding for f in enrolled)
        labels.extend(person for _ in enrolled)
    matrix = np.stack(gallery)
    labels_array = np.array(labels)
    impostor_best = (np.stack([f.embedding for f in impostors]) @ matrix.T).max(axis=1)
    # The lowest threshold at which at most target_fpir of the impostors clear it.
    threshold = float(np.quantile(impostor_best, 1 - target_fpir, method="higher")) + 1e-6
    scores = np.stack([f.embedding for f in genuine]) @ matrix.T
    top = scores.argmax(axis=1)
    hits = (labels_array[top] == np.array([f.person for f in genuine])) & (scores.max(axis=1) >= threshold)
    return {"threshold": round(threshold, 4), "fnir": float(1 - hits.mean()),
            "fpir": float(np.mean(impostor_best >= threshold)), "gallery_faces": len(gallery),
            "people_not_enrolled": not_enrolled, "genuine_probes": len(genuine), "impostor_probes": len(impostors)}


def run(faces: list[LabelledFace], target_fpir: float) -> dict:
    return {"faces": len(faces), "left_out": left_out_shares(faces),
            "identification": {level: identification(faces, BARS[level], target_fpir) for level in LEVELS},
            "quality_percentiles": percentiles(faces)}


def percentiles(faces: list[LabelledFace]) -> dict[str, list[float]]:
    values = {"sharpness": [f.quality.sharpness for f in faces], "brightness": [f.quality.brightness for f in faces],
              "abs_yaw": [abs(f.quality.yaw) for f in faces], "abs_pitch": [abs(f.quality.pitch) for f in faces],
              "size": [f.quality.size for f in faces], "det_score": [f.quality.det_score for f in faces]}
    return {name: np.percentile(v, [1, 5, 50, 95, 99]).round(3).tolist() for name, v in values.items()}


def report(result: dict, target_fpir: float) -> None:
    print(f"{result['faces']} LFW dev-train faces")
    print("\nQuality percentiles (1, 5, 50, 95, 99 %)")
    for name, values in result["quality_percentiles"].items():
        print(f"  {name}: {values}")
    print("\nLeft out per level")
    for level, shares in result["left_out"].items():
        print(f"  {level}: " + ", ".join(f"{reason} {share:.1%}" for reason, share in shares.items()))
    print(f"\nOpen-set identification, threshold at FPIR = {target_fpir:.0%} (filter applied to enrolment)")
    print("| level | gallery faces | people not enrolled | threshold | FPIR | FNIR |")
    print("|---|---|---|---|---|---|")
    for level, row in result["identification"].items():
        print(f"| {level} | {row['gallery_faces']} | {row['people_not_enrolled']} | {row['threshold']:.3f} | "
              f"{row['fpir']:.2%} | {row['fnir']:.2%} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--det", type=int, default=640, help="detector size (the service's default: 640)")
    parser.add_argument("--target-fpir", type=float, default=0.01)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    started = time.perf_counter()
    faces = embed_lfw(args.det)
    log(f"embedded in {time.perf_counter() - started:.0f} s")
    result = run(faces, args.target_fpir)
    report(result, args.target_fpir)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
