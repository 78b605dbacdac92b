"""Does a calibrated threshold hold the false-positive identification rate as a gallery grows? (LFW dev-train)

    .venv/bin/python bench/bench_calibration.py [--det 640] [--share 0.5] [--trials 40] [--seed 7] [--json out.json]

What it does (docs/MODELS.md, "Calibration"):
1. Embeds the largest face of every LFW dev-train photo with the test pack (in
   memory; nothing is written), 2 threads.
2. Splits the people at random into a calibration part (--share of them) and a
   held-out part. The calibration (embeddings/engine/calibration.py) is made
   from every different-person pair of the calibration part.
3. FMR on held-out pairs: every different-person pair of the held-out part,
   the measured share at or above threshold_for_fmr(f), for f = 1e-2 .. 1e-5.
4. Open-set identification on held-out people, per gallery size N: a gallery
   of N people drawn at random (one photo each, their first with a face),
   impostor probes: every photo of the held-out people not drawn (never
   enrolled), genuine probes: the drawn people's other photos. Measured FPIR
   (impostor probes whose best score clears the threshold) and FNIR (genuine
   probes whose best match is not their person at or above the threshold), at
   the calibrated threshold for a target FPIR of 1 % and at the fixed 0.45;
   --trials draws per size, pooled.
The largest N is the number of held-out people less a margin of impostors
(at share 0.5: 1,066 held-out people, so N = 1,000 leaves 66 impostor people a
draw): LFW dev-train has 2,132 people, and more would need more labelled
identities than it holds.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from embeddings.engine import EngineConfig, get_engine
from embeddings.engine.calibration import calibrate, impostor_scores
from embeddings.engine.labelled import LabelledFace, embed_people, people_photos

ROOT = Path(__file__).resolve().parent.parent.parent / "shared"
LFW = ROOT / "faces" / "lfw-devtrain"
MODELS = ROOT / "models"
PACK = "scrfd500m-mobilefacenet"
FIXED = 0.45  # SEARCH_MATCH_THRESHOLD today
TARGET = 0.01
SIZES = (100, 200, 500, 1000)


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def embed_lfw(det: int) -> list[LabelledFace]:
    config = EngineConfig(model_root=str(MODELS), pack=PACK, det_size=(det, det), intra_op_threads=1)
    engine = get_engine(config)
    started = time.perf_counter()
    faces = embed_people(engine, people_photos(LFW), threads=2,
                         progress=lambda done, total: log(f"  embedded {done}/{total} photos "
                                                          f"({time.perf_counter() - started:.0f} s)"))
    return faces


def split(faces: list[LabelledFace], share: float, rng: np.random.Generator) -> tuple[list, list]:
    people = sorted({f.person for f in faces})
    chosen = set(rng.choice(people, size=round(len(people) * share), replace=False).tolist())
    return [f for f in faces if f.person in chosen], [f for f in faces if f.person not in chosen]


def fmr_check(calibration, held_out: list[LabelledFace]) -> list[dict]:
    scores = impostor_scores(np.stack([f.embedding for f in held_out]), [f.person for f in held_out])
    rows = []
    for fmr in (1e-2, 1e-3, 1e-4, 1e-5):
        threshold = calibration.threshold_for_fmr(fmr)
        measured = float(np.mean(scores >= threshold))
        rows.append({"target_fmr": fmr, "threshold": round(threshold, 4), "measured_fmr": measured,
                     "pairs": len(scores), "pairs_above": int(np.sum(scores >= threshold))})
    return rows


def identification(calibration, held_out: list[LabelledFace], size: int, trials: int,
                   rng: np.random.Generator) -> dict:
    by_person: dict[str, list[LabelledFace]] = {}
    for face in held_out:
        by_person.setdefault(face.person, []).append(face)
    people = sorted(by_person)
    calibrated = calibration.threshold_for_fpir(TARGET, size)
    counts = {"impostor": 0, "genuine": 0, "fp_cal": 0, "fp_fixed": 0, "fn_cal": 0, "fn_fixed": 0}
    for _ in range(trials):
        drawn = rng.choice(len(people), size=size, replace=False)
        gallery_people = [people[i] for i in drawn]
        gallery = np.stack([by_person[p][0].embedding for p in gallery_people])
        enrolled = set(gallery_people)
        impostors = [f for p in people if p not in enrolled for f in by_person[p]]
        genuine = [f for p in gallery_people for f in by_person[p][1:]]
        if impostors:
            best = (np.stack([f.embedding for f in impostors]) @ gallery.T).max(axis=1)
            counts["impostor"] += len(impostors)
            counts["fp_cal"] += int(np.sum(best >= calibrated))
            counts["fp_fixed"] += int(np.sum(best >= FIXED))
        if genuine:
            scores = np.stack([f.embedding for f in genuine]) @ gallery.T
            top = scores.argmax(axis=1)
            right = np.array([gallery_people[t] == f.person for t, f in zip(top, genuine, strict=True)])
            best = scores.max(axis=1)
            counts["genuine"] += len(genuine)
            counts["fn_cal"] += int(np.sum(~(right & (best >= calibrated))))
            counts["fn_fixed"] += int(np.sum(~(right & (best >= FIXED))))
    return {"gallery_size": size, "trials": trials, "impostor_probes": counts["impostor"],
            "genuine_probes": counts["genuine"], "calibrated_threshold": round(calibrated, 4),
            "fpir_calibrated": counts["fp_cal"] / max(1, counts["impostor"]),
            "fpir_fixed": counts["fp_fixed"] / max(1, counts["impostor"]),
            "predicted_fpir_fixed": calibration.fpir(FIXED, size),
            "fnir_calibrated": counts["fn_cal"] / max(1, counts["genuine"]),
            "fnir_fixed": counts["fn_fixed"] / max(1, counts["genuine"])}


def run(faces: list[LabelledFace], share: float, trials: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    calibration_part, held_out = split(faces, share, rng)
    calibration = calibrate(np.stack([f.embedding for f in calibration_part]),
                            [f.person for f in calibration_part], model_id="bench", source="lfw-devtrain part")
    held_people = len({f.person for f in held_out})
    sizes = [n for n in SIZES if n <= held_people - 50] or [held_people // 2]
    return {"calibration": {"people": len({f.person for f in calibration_part}), "faces": len(calibration_part),
                            "impostor_pairs": calibration.count},
            "held_out": {"people": held_people, "faces": len(held_out)},
            "fmr": fmr_check(calibration, held_out),
            "identification": [identification(calibration, held_out, n, trials, rng) for n in sizes]}


def report(result: dict) -> None:
    c, h = result["calibration"], result["held_out"]
    print(f"calibration: {c['people']} people, {c['faces']} faces, {c['impostor_pairs']:,} impostor pairs; "
          f"held out: {h['people']} people, {h['faces']} faces")
    print("\nFMR on held-out impostor pairs")
    print("| target FMR | threshold | measured FMR | pairs above / pairs |")
    print("|---|---|---|---|")
    for row in result["fmr"]:
        print(f"| {row['target_fmr']:.0e} | {row['threshold']:.3f} | {row['measured_fmr']:.2e} | "
              f"{row['pairs_above']:,} / {row['pairs']:,} |")
    print("\nOpen-set identification on held-out people (target FPIR 1 %)")
    print("| gallery N | calibrated t | FPIR at t | FNIR at t | FPIR at 0.45 (predicted) | FNIR at 0.45 | "
          "impostor / genuine probes |")
    print("|---|---|---|---|---|---|---|")
    for row in result["identification"]:
        print(f"| {row['gallery_size']} | {row['calibrated_threshold']:.3f} | {row['fpir_calibrated']:.2%} | "
              f"{row['fnir_calibrated']:.2%} | {row['fpir_fixed']:.2%} ({row['predicted_fpir_fixed']:.2%}) | "
              f"{row['fnir_fixed']:.2%} | {row['impostor_probes']:,} / {row['genuine_probes']:,} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--det", type=int, default=640, help="detector size (the service's default: 640)")
    parser.add_argument("--share", type=float, default=0.5, help="share of the people used to calibrate")
    parser.add_argument("--trials", type=int, default=40, help="random galleries per size")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    started = time.perf_counter()
    faces = embed_lfw(args.det)
    result = run(faces, args.share, args.trials, args.seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    report(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
