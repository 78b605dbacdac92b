"""Does the model slow down when something else ran just before it? (docs/BENCHMARKS.md, "Search latency")

    .venv/bin/python bench/bench_model_caches.py [--photos 150]

Times the engine's analyze (detect + embed, largest face) on LFW dev-train
photos in one process: back to back; after a 64 MB memory sweep before each
photo (the caches emptied, as other work between two requests would); after
20 ms asleep; and with OpenCV limited to one thread. Prints wall p50 / p90
and mean CPU per photo for each, twice.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceservice.settings")
os.environ.setdefault("FACE_MODEL_ROOT", str(Path(__file__).resolve().parents[2] / "shared" / "models"))
os.environ.setdefault("FACE_MODEL_PACK", "scrfd500m-mobilefacenet")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=150)
    args = parser.parse_args()
    import cv2
    import django

    django.setup()
    from bench.search_stack import LFW_DIR
    from embeddings.engine import AnalyzeOptions, decode_image
    from embeddings.face_engine import face_engine

    datas = [p.read_bytes() for p in sorted(LFW_DIR.glob("*/*.jpg"))[:args.photos]]
    engine = face_engine()
    sweep = np.ones(64 * 1024 * 1024 // 8)

    def run(label: str, before=None) -> None:
        for data in datas[:10]:
            engine.analyze(decode_image(data), AnalyzeOptions(max_faces=1))
        walls, cpus = [], []
        for data in datas:
            if before:
                before()
            image = decode_image(data)
            cpu, wall = time.process_time(), time.perf_counter()
            engine.analyze(image, AnalyzeOptions(max_faces=1))
            walls.append((time.perf_counter() - wall) * 1000)
            cpus.append((time.process_time() - cpu) * 1000)
        print(f"{label:30} analyze wall p50 {np.median(walls):5.1f} p90 {np.percentile(walls, 90):5.1f} ms; "
              f"CPU mean {np.mean(cpus):5.1f} ms (OpenCV threads {cv2.getNumThreads()})")

    for _ in range(2):
        run("back to back")
        run("after a 64 MB memory sweep", lambda: sweep.sum())
        run("after 20 ms asleep", lambda: time.sleep(0.02))
    cv2.setNumThreads(1)
    run("OpenCV on one thread")
    return 0


if __name__ == "__main__":
    sys.exit(main())
