"""End-to-end search latency through HTTP, with 100k faces in the tenant, against the model's own time.

Over 400 lines: the tenant fill, the alternating timing loop and the report
belong to one run; the service start-up is apart (bench/search_stack.py).

    .venv/bin/python bench/bench_search_latency.py [--total-faces 100000] [--searches 300] [--rounds 2]
                                                   [--json out.json]

What it does (see docs/BENCHMARKS.md, "Search latency"):
1. Starts the real service (bench/search_stack.py): throw-away PostgreSQL +
   Valkey, migrations, a tenant and an API key, gunicorn with one worker.
2. Fills the tenant: one real face (the first photo with a face) of LFW
   dev-train people with two or more photos, in name order, until their other
   photos make enough probes (warm-up + searches), then synthetic filler faces
   (random unit vectors of the model's dimension) up to --total-faces, all
   through embeddings.store.services.replace_asset_faces (1,000 faces per asset
   call: encrypted, projected, one transaction each). Then the model's HNSW
   index (embeddings.store.vector_index.ensure_vector_index) and VACUUM ANALYZE.
3. Warms up, then for each of --searches probe photos (other photos of the
   enrolled people, one face each) runs, in alternating order, (a) an HTTP
   POST /v1/search (multipart, faces=largest, default threshold and top_k)
   and (b) the bare engine in this process: decode_image + analyze of the
   same bytes with the same configuration as the server. Repeated --rounds
   times, so the noise of a shared machine shows.
4. Prints p50 / p99 of the HTTP wall time, of each server stage
   (timings_ms), of the non-model part of each request (wall - decode -
   detect_embed) and of the bare model; and how often the service's best
   match is brute force's best over the same 100k faces (HNSW recall).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import time
from pathlib import Path

# Before NumPy loads: the bare engine gets the web process's BLAS threads
# (faceservice/__init__.py sets the same), so the reference is the same model.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.search_stack import LFW_DIR, ServiceStack, SimpleFace, lfw_people, log, percentile

STAGES = ("app", "decode", "detect_embed", "search", "vector_search", "gallery_scan", "rerank")


def random_unit_vectors(count: int, dimension: int, seed: int) -> np.ndarray:
    """`count` random unit vectors (float32): isotropic filler faces."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((count, dimension)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors


def clustered_filler(count: int, dimension: int, seed: int) -> np.ndarray:
    """`count` face-like vectors: identities with several photos each (bench/vectors_data.py)."""
    from bench.vectors_data import make_tenant

    return make_tenant(index=0, size=count, dimension=dimension, queries=0, seed=seed).embeddings


FILLERS = {"random": random_unit_vectors, "clustered": clustered_filler}


def insert_filler(stack: ServiceStack, vectors: np.ndarray, *, model_id: str, batch: int = 1000,
                  prefix: str = "filler") -> list:
    """Index the vectors as faces of assets of `batch` faces each; their face ids, in order."""
    face_ids: list = []
    started = time.perf_counter()
    for start in range(0, len(vectors), batch):
        chunk = vectors[start:start + batch]
        faces = [SimpleFace((0.0, 0.0, 100.0, 100.0), 0.9, v) for v in chunk]
        face_ids.extend(stack.enrol(asset_id=f"{prefix}-{start // batch:06d}", faces=faces, model_id=model_id))
        done = start + len(chunk)
        if done % (batch * 10) == 0 or done == len(vectors):
            rate = done / (time.perf_counter() - started)
            log(f"filler: {done}/{len(vectors)} faces ({rate:.0f} faces/s)")
    return face_ids


def vacuum_analyze() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) embeddings_face")


def forget_face_count(tenant_id, collection_id, model_id: str) -> None:
    """The service caches the collection's face count for 60 s (it picks exact vs HNSW):
    embeddings.search.selectors.faces_of_model."""
    from django.core.cache import cache

    cache.delete(f"face-count:{tenant_id}:{collection_id}:{model_id}")


def summarise(values) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p90": percentile(values, 90), "p99": percentile(values, 99),
            "mean": float(np.mean(values)) if len(values) else float("nan"), "n": len(values)}


def _cpu_seconds(pid: int) -> float:
    """utime + stime of one process (all its threads), in seconds; 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue
    return found


def service_processes(stack: ServiceStack) -> dict[str, list[int]]:
    """PIDs whose CPU a search costs: the gunicorn worker, PostgreSQL (all its processes), Valkey."""
    pids: dict[str, list[int]] = {"web": [], "postgres": [], "valkey": []}
    if stack.web is not None and stack.web.process is not None:
        pids["web"] = _children(stack.web.process.pid)
    services = stack.services
    if services is not None and services.postgres is not None:
        pid_file = services.postgres.data_dir / "pgdata" / "postmaster.pid"
        if pid_file.exists():
            postmaster = int(pid_file.read_text().split()[0])
            pids["postgres"] = [postmaster, *_children(postmaster)]
    for server in getattr(services, "background", []):
        if server.name.startswith("Valkey") and server.process is not None:
            pids["valkey"] = [server.process.pid]
    return pids


def cpu_of(pids: dict[str, list[int]]) -> dict[str, dict[int, float]]:
    return {name: {pid: _cpu_seconds(pid) for pid in group} for name, group in pids.items()}


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    """CPU seconds per group between two readings: processes alive at the second reading
    (one started in between counts whole; one that exited in between is lost, e.g. autovacuum)."""
    return {name: sum(max(0.0, cpu - before.get(name, {}).get(pid, 0.0)) for pid, cpu in group.items())
            for name, group in after.items()}


def time_model(engine, data: bytes, limits) -> dict[str, float]:
    """The bare engine on one image, as the service runs it: decode, then analyze (largest face)."""
    from embeddings.engine import AnalyzeOptions, decode_image

    c0, t0 = time.process_time(), time.perf_counter()
    image = decode_image(data, limits)
    t1 = time.perf_counter()
    engine.analyze(image, AnalyzeOptions(max_faces=1))
    t2, c2 = time.perf_counter(), time.process_time()
    return {"decode": (t1 - t0) * 1000, "analyze": (t2 - t1) * 1000, "total": (t2 - t0) * 1000,
            "cpu": (c2 - c0) * 1000}


def time_detect(engine, data: bytes, limits) -> float:
    """The detector alone on one image (to split the engine's time into detect and embed)."""
    from embeddings.engine import decode_image

    image = decode_image(data, limits)
    t0 = time.perf_counter()
    engine._detector.detect(image, 0.3)  # what analyze runs first (min of its two score floors)
    return (time.perf_counter() - t0) * 1000


def measure_round(stack: ServiceStack, engine, probes: list[bytes], limits) -> dict:
    """One interleaved pass over the probes: per request, the service's and the model's times.

    Besides wall time, CPU time: the service's (gunicorn worker + PostgreSQL +
    Valkey, read from /proc around the round) and the bare model's (this
    process, around decode + analyze). CPU time is what a request costs
    whatever else the machine runs; wall time on a shared machine is not.
    """
    wall, model, model_decode, model_analyze, other, paired = [], [], [], [], [], []
    outside: list[float] = []  # wall minus the server's own time: HTTP, loopback, this client
    model_cpu: list[float] = []
    pids = service_processes(stack)
    service_cpu_before = cpu_of(pids)
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    bodies = []
    load_before = os.getloadavg()[0]
    # Strictly alternating, the service then the bare engine: each model run
    # follows one of the other process's. The two copies of the model evict
    # each other's weights from the CPU caches, and the reference must not run
    # warmer than the server (run it twice in a row and it gains ~2-5 ms).
    for data in probes:
        body, ms = stack.search(data, faces="largest")
        wall.append(ms)
        bodies.append(body)
        t = body["timings_ms"]
        for name in STAGES:
            stages[name].append(float(t.get(name, 0.0)))
        other.append(ms - t.get("decode", 0.0) - t.get("detect_embed", 0.0))
        outside.append(ms - t.get("app", 0.0))
        m = time_model(engine, data, limits)
        model.append(m["total"])
        model_cpu.append(m["cpu"])
        model_decode.append(m["decode"])
        model_analyze.append(m["analyze"])
        paired.append(wall[-1] - model[-1])  # the same photo, one right after the other
    used = cpu_used(service_cpu_before, cpu_of(service_processes(stack)))
    detect = [time_detect(engine, data, limits) for data in probes]  # a pass of its own, for the same reason
    service_cpu = {name: seconds * 1000 / max(1, len(probes)) for name, seconds in used.items()}
    return {
        "cpu_ms_per_request": {"service": service_cpu, "service_total": sum(service_cpu.values()),
                               "model": float(np.mean(model_cpu)) if model_cpu else float("nan")},
        "load_before": load_before, "load_after": os.getloadavg()[0],
        "service_wall": summarise(wall), "service_non_model": summarise(other),
        "outside_django": summarise(outside),
        "paired_difference": summarise(paired),
        "stages": {name: summarise(values) for name, values in stages.items()},
        "model": summarise(model), "model_decode": summarise(model_decode),
        "model_analyze": summarise(model_analyze), "model_detect": summarise(detect),
        "_bodies": bodies, "_wall": wall, "_model": model, "_other": other, "_paired": paired,
    }


def overhead(round_: dict) -> dict[str, float]:
    service, model = round_["service_wall"], round_["model"]
    return {"p50_minus_model_p50": service["p50"] - model["p50"],
            "p99_minus_model_p99": service["p99"] - model["p99"],
            "p99_ratio": service["p99"] / model["p99"],
            "non_model_p99": round_["service_non_model"]["p99"]}


def top_matches(scores: np.ndarray, face_ids: list, top_k: int, threshold: float) -> list:
    """Face ids of the exact top_k at or above the threshold, best first."""
    k = min(top_k, len(scores))
    best = np.argpartition(-scores, k - 1)[:k]
    best = best[np.argsort(-scores[best], kind="stable")]
    return [str(face_ids[i]) for i in best if scores[i] >= threshold]


def recall_against_brute_force(bodies: list[dict], probe_embeddings: list[np.ndarray], all_vectors: np.ndarray,
                               all_face_ids: list, threshold: float, real_faces: int = 0) -> dict:
    """Does the service (HNSW + re-rank) return what an exact scan over the same faces returns?

    The first `real_faces` rows of all_vectors are real enrolled faces, the rest filler: the
    real ones are what an identification needs; random filler near the threshold is the
    hardest case there is for a graph index (no cluster structure at all).
    """
    same_top, found, expected, real_found, real_expected = 0, 0, 0, 0, 0
    misses = []
    real_ids = {str(face_id) for face_id in all_face_ids[:real_faces]}
    for body, embedding in zip(bodies, probe_embeddings, strict=True):
        matches = body["faces"][0]["matches"] if body["faces"] else []
        top_k = 10
        scores = all_vectors @ embedding
        exact = top_matches(scores, all_face_ids, top_k, threshold)
        served = [m["face_id"] for m in matches]
        same_top += (served[:1] == exact[:1])
        expected += len(exact)
        found += len(set(exact) & set(served))
        exact_real = [f for f in exact if f in real_ids]
        real_expected += len(exact_real)
        real_found += len(set(exact_real) & set(served))
        if served[:1] != exact[:1] and len(misses) < 20:
            best = int(np.argmax(scores))
            misses.append({"exact_best": round(float(scores[best]), 4), "exact_best_is_real": best < real_faces,
                           "served_best": matches[0]["similarity"] if matches else None})
    return {"probes": len(bodies), "same_best_match": same_top,
            "recall_at_10_above_threshold": found / expected if expected else float("nan"),
            "real_recall_at_10_above_threshold": real_found / real_expected if real_expected else float("nan"),
            "real_expected": real_expected, "best_match_differences": misses}


def run(stack: ServiceStack, *, total_faces: int, searches: int, rounds: int, warmup: int,
        seed: int = 7, lfw_dir: Path = LFW_DIR, max_people: int = 0, filler_kind: str = "random") -> dict:
    from django.conf import settings

    from embeddings.engine import AnalyzeOptions, decode_image
    from embeddings.image_sources import image_limits
    from embeddings.search.gallery import galleries
    from embeddings.search.selectors import SearchTimings, search_faces
    from embeddings.store.vector_index import maintain_tenant_indexes

    engine = stack.engine()
    limits = image_limits()
    threshold = float(settings.SEARCH_MATCH_THRESHOLD)
    people = lfw_people(lfw_dir)
    if max_people:
        people = dict(list(people.items())[:max_people])
    rng = random.Random(seed)
    gallery_ids, gallery_vectors, probe_pool = [], [], []
    started = time.perf_counter()
    need = warmup + searches
    for person, photos in people.items():
        if len(photos) < 2:
            continue
        if len(probe_pool) >= need:  # enough probes: the rest of the tenant is filler
            break
        analysed = [(p, engine.analyze(decode_image(p.read_bytes(), limits), AnalyzeOptions(max_faces=1)).faces)
                    for p in photos]
        with_face = [(p, faces[0]) for p, faces in analysed if faces]
        if len(with_face) < 2:
            continue
        (path, face), rest = with_face[0], with_face[1:]
        gallery_ids += stack.enrol(asset_id=f"{person}/{path.name}", subject_id=person, model_id=engine.model_id,
                                   faces=[SimpleFace(face.bbox, face.det_score, face.embedding)])
        gallery_vectors.append(face.embedding)
        probe_pool += [(p.read_bytes(), f.embedding) for p, f in rest]
    log(f"enrolled {len(gallery_ids)} real faces in {time.perf_counter() - started:.0f}s; "
        f"{len(probe_pool)} probe photos")

    filler_count = max(0, total_faces - len(gallery_ids))
    filler = FILLERS[filler_kind](filler_count, engine.dimension, seed)
    started = time.perf_counter()
    filler_ids = insert_filler(stack, filler, model_id=engine.model_id)
    fill_s = time.perf_counter() - started
    # Built after the bulk load: several times faster than growing the graph row by
    # row (measured here: 5k faces, 8 s to build vs 110 s of inserts into the index).
    started = time.perf_counter()
    created = stack.ensure_vector_index(engine.model_id, engine.dimension)
    index_s = time.perf_counter() - started
    log(f"HNSW index for {engine.model_id}: {'built' if created else 'present'} in {index_s:.0f}s")
    # What the service's beat task does next: a collection over EXACT_SEARCH_MAX_FACES
    # gets its own graph (embeddings/store/vector_index.py); here, the tenant's default one.
    started = time.perf_counter()
    tenant_index = maintain_tenant_indexes()
    tenant_index_s = time.perf_counter() - started
    log(f"collection indexes built: {tenant_index.built} in {tenant_index_s:.0f}s")
    started = time.perf_counter()
    vacuum_analyze()
    vacuum_s = time.perf_counter() - started
    collection_id = stack.default_collection_id()
    forget_face_count(stack.tenant_id, collection_id, engine.model_id)
    search_faces(tenant_id=stack.tenant_id, embedding=gallery_vectors[0], model_id=engine.model_id,
                 collection_id=collection_id)
    galleries.wait_for_loads()  # a large collection's gallery loads in a thread (as in the web process)
    timings = SearchTimings()  # the strategy of the searches that follow the first
    search_faces(tenant_id=stack.tenant_id, embedding=gallery_vectors[0], model_id=engine.model_id,
                 collection_id=collection_id, timings=timings)
    log(f"{len(gallery_ids) + len(filler_ids)} faces in the tenant; strategy {timings.strategy}")

    rng.shuffle(probe_pool)
    if len(probe_pool) < need:  # a small --max-people run: reuse photos
        probe_pool = (probe_pool * (need // max(1, len(probe_pool)) + 1))[:need]
    warm, probes = probe_pool[:warmup], probe_pool[warmup:need]
    for data, _ in warm:
        body, _ = stack.search(data, faces="largest")
        time_model(engine, data, limits)
    # A tenant above SEARCH_MEMORY_SYNC_LOAD_FACES has its gallery loaded by a thread of the
    # web process while pgvector answers: time the rounds once it is in (up to a minute).
    deadline = time.monotonic() + 60
    while warm and "gallery_scan" not in body["timings_ms"] and time.monotonic() < deadline:
        time.sleep(0.5)
        body, _ = stack.search(warm[0][0], faces="largest")

    all_vectors = np.concatenate([np.stack(gallery_vectors), filler]) if filler_count else np.stack(gallery_vectors)
    all_ids = gallery_ids + filler_ids
    results = []
    for r in range(rounds):
        log(f"round {r + 1}/{rounds}: {len(probes)} searches")
        round_ = measure_round(stack, engine, [data for data, _ in probes], limits)
        round_["overhead"] = overhead(round_)
        round_["accuracy"] = recall_against_brute_force(round_["_bodies"], [e for _, e in probes],
                                                        all_vectors, all_ids, threshold, len(gallery_ids))
        results.append(round_)
    pooled_wall = [v for r in results for v in r["_wall"]]
    pooled_model = [v for r in results for v in r["_model"]]
    pooled_other = [v for r in results for v in r["_other"]]
    pooled_paired = [v for r in results for v in r["_paired"]]
    pooled = {"service_wall": summarise(pooled_wall), "model": summarise(pooled_model),
              "service_non_model": summarise(pooled_other), "paired_difference": summarise(pooled_paired)}
    pooled["overhead"] = overhead(pooled)
    for r in results:
        for key in [k for k in r if k.startswith("_")]:
            del r[key]
    return {
        "model_id": engine.model_id, "dimension": engine.dimension, "det_size": list(engine.config.det_size),
        "threshold": threshold, "faces_in_tenant": len(all_ids), "real_faces": len(gallery_ids),
        "filler_faces": len(filler_ids), "filler_kind": filler_kind, "strategy": timings.strategy,
        "hnsw": {"m": settings.HNSW_M, "ef_construction": settings.HNSW_EF_CONSTRUCTION,
                 "ef_search": settings.HNSW_EF_SEARCH, "tenant_m": settings.HNSW_TENANT_M,
                 "tenant_ef_construction": settings.HNSW_TENANT_EF_CONSTRUCTION,
                 "tenant_ef_search": settings.HNSW_TENANT_EF_SEARCH},
        "fill_seconds": round(fill_s, 1), "index_build_seconds": round(index_s, 1),
        "tenant_index_build_seconds": round(tenant_index_s, 1), "vacuum_analyze_seconds": round(vacuum_s, 1),
        "cpus": os.cpu_count(), "searches_per_round": len(probes), "warmup": len(warm),
        "rounds": results, "pooled": pooled, "server_errors_retried": list(stack.server_errors),
    }


def _row(name: str, s: dict) -> str:
    return f"{name:40}{s['p50']:>9.1f}{s['p90']:>9.1f}{s['p99']:>9.1f}{s['mean']:>9.1f}"


def report(out: dict) -> str:
    lines = [f"model {out['model_id']} ({out['dimension']}-d, det {out['det_size'][0]}); "
             f"{out['faces_in_tenant']} faces in the tenant ({out['real_faces']} real, {out['filler_faces']} {out['filler_kind']} filler); "
             f"strategy {out['strategy']}; HNSW {out['hnsw']}",
             f"filled in {out['fill_seconds']} s, index built in {out['index_build_seconds']} s, "
             f"collection index in {out['tenant_index_build_seconds']} s, VACUUM ANALYZE {out['vacuum_analyze_seconds']} s; "
             f"{out['cpus']} CPUs; {out['searches_per_round']} searches a round after {out['warmup']} warm-up; "
             f"5xx answers retried: {len(out['server_errors_retried'])}"]
    for n, r in enumerate(out["rounds"], 1):
        lines += ["", f"round {n} (load average {r['load_before']:.1f} -> {r['load_after']:.1f})",
                  f"{'ms':40}{'p50':>9}{'p90':>9}{'p99':>9}{'mean':>9}",
                  _row("service, HTTP wall time", r["service_wall"])]
        lines += [_row(f"  server {name}", r["stages"][name]) for name in STAGES]
        lines += [_row("  non-model (wall - decode - detect_embed)", r["service_non_model"]),
                  _row("  outside Django (wall - server app)", r["outside_django"]),
                  _row("service wall - model wall, same photo", r["paired_difference"]),
                  _row("model: decode + analyze (bare engine)", r["model"]),
                  _row("  decode", r["model_decode"]), _row("  analyze (detect + embed)", r["model_analyze"]),
                  _row("  detect alone", r["model_detect"])]
        o, a = r["overhead"], r["accuracy"]
        lines.append(f"service p99 - model p99 = {o['p99_minus_model_p99']:.1f} ms (ratio {o['p99_ratio']:.2f}); "
                     f"p50 difference {o['p50_minus_model_p50']:.1f} ms")
        lines.append(f"best match = exact best over all faces: {a['same_best_match']}/{a['probes']}; "
                     f"recall of the exact top-10 above threshold {a['recall_at_10_above_threshold']:.4f}, "
                     f"of its real faces {a['real_recall_at_10_above_threshold']:.4f} ({a['real_expected']})")
        if a["best_match_differences"]:
            lines.append("  where they differ (exact best, is it a real face, service's best): "
                         + "; ".join(f"{d['exact_best']} {'real' if d['exact_best_is_real'] else 'filler'} "
                                     f"{d['served_best']}" for d in a["best_match_differences"][:10]))
        c = r["cpu_ms_per_request"]
        lines.append(f"CPU ms per request: service {c['service_total']:.1f} "
                     f"({', '.join(f'{k} {v:.1f}' for k, v in c['service'].items())}), "
                     f"bare model {c['model']:.1f}; difference {c['service_total'] - c['model']:.1f}")
    p = out["pooled"]
    lines += ["", "pooled over rounds", _row("service, HTTP wall time", p["service_wall"]),
              _row("  non-model", p["service_non_model"]),
              _row("service wall - model wall, same photo", p["paired_difference"]),
              _row("model: decode + analyze", p["model"]),
              f"service p99 - model p99 = {p['overhead']['p99_minus_model_p99']:.1f} ms "
              f"(ratio {p['overhead']['p99_ratio']:.2f})"]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-faces", type=int, default=100_000)
    parser.add_argument("--searches", type=int, default=300, help="timed searches per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--max-people", type=int, default=0, help="only the first N LFW people (a quick run)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--filler", choices=sorted(FILLERS), default="random",
                        help="random: isotropic unit vectors (hardest for HNSW); clustered: face-like identities")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # stop the servers on `kill` too
    with ServiceStack() as stack:
        out = run(stack, total_faces=args.total_faces, searches=args.searches, rounds=args.rounds,
                  warmup=args.warmup, seed=args.seed, max_people=args.max_people, filler_kind=args.filler)
    print(report(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
