"""Face engine vs bare insightface FaceAnalysis.get, same process, same photos.

    .venv/bin/python bench/bench_engine.py [--det-size 640] [--threads 1] [--rounds 3] [--lfw 300]

Both sides get the same decoded images, the same detector input size, the same
onnxruntime thread settings (one SessionOptions), CPU provider. Calls are
interleaved image by image, alternating which side goes first, so machine
noise (other processes on a shared box) hits both alike. Decoding is not
timed. Sets: single-face LFW photos (250x250) and the multi-face group photos.
Prints a markdown table for docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from embeddings.engine import EngineConfig, FaceEngine, ImageLimits, decode_image  # noqa: E402
from embeddings.engine.runtime import session_options  # noqa: E402

SHARED = REPO.parent / "shared"
PACK_DIR = SHARED / "models" / "scrfd500m-mobilefacenet"
LIMITS = ImageLimits(max_bytes=30 * 1024 * 1024, max_pixels=40_000_000)


def load_sets(lfw_count: int) -> dict[str, list[np.ndarray]]:
    lfw = sorted((SHARED / "faces" / "lfw-devtrain").glob("*/*.jpg"))
    step = max(1, len(lfw) // lfw_count)
    group_dir = SHARED / "faces" / "group-photos"
    groups = [p for p in sorted(group_dir.iterdir())
              if p.stem.split("_")[-1].isdigit() and int(p.stem.split("_")[-1]) >= 2]
    groups.append(group_dir / "readme_example.png")
    return {
        "LFW single-face": [decode_image(p.read_bytes(), LIMITS) for p in lfw[::step][:lfw_count]],
        "group photos (2-8 faces)": [decode_image(p.read_bytes(), LIMITS) for p in groups],
    }


def build(det: int, threads: int):
    from insightface.app import FaceAnalysis

    config = EngineConfig(model_root=str(PACK_DIR.parent), pack=PACK_DIR.name, det_size=(det, det),
                          intra_op_threads=threads)
    engine = FaceEngine(config)
    bare = FaceAnalysis(name=str(PACK_DIR), allowed_modules=["detection", "recognition"],
                        providers=["CPUExecutionProvider"], sess_options=session_options(config))
    bare.prepare(ctx_id=0, det_size=(det, det), det_thresh=0.5)
    return engine, bare


def run(engine: FaceEngine, bare, images: list[np.ndarray], rounds: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"engine": [], "bare": [], "engine_cpu": [], "bare_cpu": []}
    faces = {"engine": 0, "bare": 0}
    calls = {"engine": lambda img: engine.analyze(img).faces, "bare": bare.get}
    for round_no in range(rounds):
        for i, image in enumerate(images):
            order = ("engine", "bare") if (i + round_no) % 2 == 0 else ("bare", "engine")
            for side in order:
                started, cpu = time.perf_counter(), time.process_time()
                found = calls[side](image)
                times[side].append(time.perf_counter() - started)
                # CPU time of the process (onnxruntime threads included): steadier than
                # wall time on a shared, oversubscribed box.
                times[f"{side}_cpu"].append(time.process_time() - cpu)
                if round_no == 0:
                    faces[side] += len(found)
    if faces["engine"] != faces["bare"]:
        print(f"WARNING: face counts differ: {faces}", file=sys.stderr)
    times["faces"] = [faces["engine"]]
    return times


def summarise(name: str, times: dict[str, list[float]], n_images: int) -> str:
    eng, bare = np.array(times["engine"]), np.array(times["bare"])
    eng_cpu, bare_cpu = np.array(times["engine_cpu"]), np.array(times["bare_cpu"])
    ratio = bare.sum() / eng.sum()  # > 1: engine faster
    cpu_ratio = bare_cpu.sum() / eng_cpu.sum()
    row = (f"| {name} | {n_images} ({times['faces'][0]} faces) | {len(eng) / eng.sum():.1f} | {len(bare) / bare.sum():.1f} "
           f"| {np.percentile(eng, 50) * 1e3:.1f} / {np.percentile(eng, 99) * 1e3:.1f} "
           f"| {np.percentile(bare, 50) * 1e3:.1f} / {np.percentile(bare, 99) * 1e3:.1f} | {ratio:.3f} "
           f"| {eng_cpu.mean() * 1e3:.1f} / {bare_cpu.mean() * 1e3:.1f} | {cpu_ratio:.3f} |")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--det-size", type=int, default=640)
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime intra-op threads (0: its default)")
    parser.add_argument("--rounds", type=int, default=3, help="passes over the LFW set")
    parser.add_argument("--group-rounds", type=int, default=15, help="passes over the (small) group set")
    parser.add_argument("--lfw", type=int, default=300, help="LFW photos to use")
    args = parser.parse_args()
    if not PACK_DIR.is_dir():
        raise SystemExit(f"models not found at {PACK_DIR}")
    warnings.simplefilter("ignore", FutureWarning)  # skimage deprecation inside insightface's alignment
    engine, bare = build(args.det_size, args.threads)
    sets = load_sets(args.lfw)
    for images in sets.values():  # warm both sides on every shape once
        for image in images[:5]:
            engine.analyze(image)
            bare.get(image)
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, det {args.det_size}, "
          f"intra-op threads {args.threads}, rounds {args.rounds}/{args.group_rounds}, "
          f"load average before {os.getloadavg()[0]:.2f}")
    print("| set | images | engine img/s | bare img/s | engine p50 / p99 ms | bare p50 / p99 ms "
          "| wall ratio (bare / engine) | CPU ms per image, engine / bare | CPU ratio (bare / engine) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for (name, images), rounds in zip(sets.items(), (args.rounds, args.group_rounds), strict=True):
        print(summarise(name, run(engine, bare, images, rounds), len(images)), flush=True)
    print(f"# load average after {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
