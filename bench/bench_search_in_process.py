"""POST /v1/search through the WSGI application in this process, against the bare engine here too.

    .venv/bin/python bench/bench_search_in_process.py [--total-faces 3000] [--searches 250]

The same request as bench_search_latency.py (multipart, faces=largest), but
handed to Django's WSGI application directly: no HTTP server, no client, and
one copy of the model, shared by the service and the bare engine. It tells
(1) what the request path adds without HTTP (wall - decode - detect_embed) and
(2) whether the model runs as fast inside a request as alone, when both use
the same model in the same process and neither runs warmer than the other.
Filler faces are clustered, face-like vectors (bench/vectors_data.py).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # as in the web process (faceservice/__init__.py)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_search_latency import clustered_filler, insert_filler, percentile, time_model
from bench.search_stack import ServiceStack, lfw_people, log, multipart_body


def wsgi_search(application, api_key: str, image: bytes) -> tuple[float, dict]:
    """One search through the WSGI app: (wall ms, the answer's timings_ms)."""
    body, content_type = multipart_body(image, {"faces": "largest"})
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/v1/search", "SERVER_NAME": "127.0.0.1",
               "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "127.0.0.1:8000",
               "wsgi.url_scheme": "http", "wsgi.input": io.BytesIO(body), "wsgi.errors": sys.stderr,
               "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": content_type, "REMOTE_ADDR": "127.0.0.1",
               "HTTP_AUTHORIZATION": f"Bearer {api_key}"}
    status = []
    started = time.perf_counter()
    answer = b"".join(application(environ, lambda s, h, exc_info=None: status.append(s)))
    wall = (time.perf_counter() - started) * 1000
    if not status[0].startswith("200"):
        raise RuntimeError(f"search answered {status[0]}: {answer[:300]!r}")
    return wall, json.loads(answer)["timings_ms"]


def run(stack: ServiceStack, *, total_faces: int, searches: int, warmup: int) -> dict:
    from embeddings.image_sources import image_limits

    engine = stack.engine()
    insert_filler(stack, clustered_filler(total_faces, engine.dimension, 7), model_id=engine.model_id)
    photos = [p.read_bytes() for paths in lfw_people().values() for p in paths][:warmup + searches]
    from faceservice.wsgi import application  # after the stack set the environment up

    limits = image_limits()
    for data in photos[:warmup]:
        wsgi_search(application, stack.api_key, data)
        time_model(engine, data, limits)
    columns: dict[str, list[float]] = {name: [] for name in (
        "wall", "decode", "detect_embed", "search", "non-model", "bare decode", "bare analyze")}
    for data in photos[warmup:]:  # strictly alternating, as in bench_search_latency.py
        wall, timings = wsgi_search(application, stack.api_key, data)
        bare = time_model(engine, data, limits)
        for name, value in (("wall", wall), ("decode", timings["decode"]), ("detect_embed", timings["detect_embed"]),
                            ("search", timings["search"]),
                            ("non-model", wall - timings["decode"] - timings["detect_embed"]),
                            ("bare decode", bare["decode"]), ("bare analyze", bare["analyze"])):
            columns[name].append(value)
    return {"faces_in_tenant": total_faces, "searches": searches, "load_after": os.getloadavg()[0],
            "ms": {name: {"p50": percentile(v, 50), "p90": percentile(v, 90), "p99": percentile(v, 99)}
                   for name, v in columns.items()}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-faces", type=int, default=3000)
    parser.add_argument("--searches", type=int, default=250)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    with ServiceStack(web_log=False) as stack:
        import logging

        logging.getLogger("faceservice.access").setLevel(logging.WARNING)  # a line per request otherwise
        out = run(stack, total_faces=args.total_faces, searches=args.searches, warmup=args.warmup)
    log(f"{out['faces_in_tenant']} faces, {out['searches']} searches, load {out['load_after']:.1f} at the end")
    print(f"{'ms':16}{'p50':>8}{'p90':>8}{'p99':>8}")
    for name, s in out["ms"].items():
        print(f"{name:16}{s['p50']:>8.2f}{s['p90']:>8.2f}{s['p99']:>8.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
