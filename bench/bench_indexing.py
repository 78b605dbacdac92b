"""Indexing throughput end to end (API -> Celery workers -> PostgreSQL) against the bare engine.

    .venv/bin/python bench/bench_indexing.py [--photos 240] [--workers 1,2] [--source url|inline]
                                             [--threads 1] [--json out.json]

What it does (see docs/BENCHMARKS.md, "Indexing"):
1. Starts the real service (bench/search_stack.py): throw-away PostgreSQL +
   Valkey, migrations, a tenant and an API key, gunicorn for the API.
2. Picks --photos LFW dev-train photos (one per person, file order) and
   serves them from a local HTTP server (--source url) or sends them inline
   (--source inline: sealed with the tenant's key in the web process).
3. Bare engine, in this process: decode_image + analyze of every photo with
   the workers' exact configuration (engine_config(), FACE_MODEL_THREADS
   threads): images/s and faces/s of ONE process doing nothing else.
4. For each N in --workers: starts `celery -A faceservice worker
   --concurrency N` (N prefork processes, each loading the models once),
   indexes a small warm-up job, then times one job of all photos from the
   POST /v1/index-jobs to the job's `succeeded` (polled in PostgreSQL every
   50 ms): images/s, faces/s, and per worker process the ratio to the bare
   engine. Also the mean per-asset stage times the workers recorded.
5. Runs the bare engine again after each timed job (a shared machine
   drifts; --rounds R times R jobs per N): each job's ratio is against the
   mean of the bare runs just before and just after it, and every phase
   records the load average (`os.getloadavg`) at its end. With R > 1 it also
   prints the median ratio per N.

The goal is a ratio of at least 0.9: the job machinery (claim, fetch, seal,
encrypt, one transaction with the audit event, dispatch) costs at most a
tenth of the model's own time. On N > cores the ratio per process must fall:
read N up to the number of cores.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pickle
import statistics
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.search_stack import PROJECT_DIR, ServiceStack, lfw_people, log


def pick_photos(count: int) -> list[Path]:
    people = lfw_people()
    photos = [paths[0] for _, paths in sorted(people.items())]
    return photos[:count]


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stats() -> list[tuple[int, int, int, float]]:
    """(pid, ppid, pgrp, cpu seconds incl. reaped children) of every process."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
        found.append((int(entry.name), int(fields[1]), int(fields[2]), ticks / CLOCK_TICKS))
    return found


def cpu_seconds(stack: ServiceStack, workers_pgid: int) -> dict[str, float]:
    """CPU used so far by the worker processes, the web server, PostgreSQL and Valkey.

    CPU, unlike wall time, does not depend on what else runs on a shared machine.
    """
    pid_file = stack.run_dir / "postgres" / "pgdata" / "postmaster.pid"
    # Servers named by DATABASE_URL / REDIS_URL (e.g. under ./dev test) are not ours to measure: 0.
    postmaster = int(pid_file.read_text().split()[0]) if pid_file.exists() else -1
    valkey = next((b.process.pid for b in stack.services.background if b.name == "Valkey"), -1)
    stats = _proc_stats()
    return {
        "workers": sum(cpu for _, _, group, cpu in stats if group == workers_pgid),
        # Of which the Celery main process (consumes, hands messages to the pool, acknowledges).
        "worker_main": sum(cpu for pid, _, _, cpu in stats if pid == workers_pgid),
        "web": sum(cpu for _, _, group, cpu in stats if group == stack.web.process.pid),
        "database": sum(cpu for pid, parent, _, cpu in stats if postmaster in (pid, parent)),
        "redis": sum(cpu for pid, _, _, cpu in stats if pid == valkey),
    }


class ImageServer:
    """The photos over HTTP on 127.0.0.1, as a tenant's image store would serve them."""

    def __init__(self, photos: dict[str, bytes]):
        self.photos = photos

    def __enter__(self) -> ImageServer:
        photos = self.photos

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                body = photos.get(self.path.lstrip("/"))
                self.send_response(200 if body is not None else 404)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(body or b"")))
                self.end_headers()
                self.wfile.write(body or b"")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/{name}"

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def bare_engines(stack: ServiceStack, photos: dict[str, bytes], processes: int) -> dict:
    """The bare engine in `processes` processes at once, each over all the photos: per-process figures.

    The fair reference for N worker processes is N bare engines sharing the
    machine as the workers do; with one process it runs in this one.
    """
    if processes == 1:
        return bare_engine(stack, photos)
    from embeddings.indexing.services import JobOptions

    work = pickle.dumps((stack.engine_config(), JobOptions().analyze_options(), list(photos.values())))
    children = [subprocess.Popen([sys.executable, __file__, "--bare-worker"], stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, cwd=PROJECT_DIR) for _ in range(processes)]
    for child in children:
        child.stdin.write(struct.pack("!Q", len(work)) + work)
        child.stdin.flush()
    for child in children:  # each has loaded and warmed its engine
        assert child.stdout.readline().strip() == b"ready"
    for child in children:
        child.stdin.write(b"go\n")
        child.stdin.close()
    runs = [json.loads(child.stdout.read()) for child in children]
    for child in children:
        child.wait()
    mean = {key: sum(r[key] for r in runs) / len(runs)
            for key in ("images_per_s", "faces_per_s", "cpu_ms_per_image", "seconds")}
    return {**mean, "images": len(photos), "processes": processes, "load_average": os.getloadavg(),
            "per_process": runs}


def bare_worker() -> None:
    """One of bare_engines' processes: load, warm up, say ready, wait for go, run, print JSON."""
    from embeddings.engine import ImageLimits, decode_image, get_engine

    (size,) = struct.unpack("!Q", sys.stdin.buffer.read(8))
    config, options, photos = pickle.loads(sys.stdin.buffer.read(size))  # noqa: S301 - from our parent
    engine, limits = get_engine(config), ImageLimits()
    for data in photos[:5]:
        engine.analyze(decode_image(data, limits), options)
    print("ready", flush=True)
    sys.stdin.buffer.readline()
    faces, started, cpu_started = 0, time.perf_counter(), time.process_time()
    for data in photos:
        faces += len(engine.analyze(decode_image(data, limits), options).faces)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    print(json.dumps({"seconds": elapsed, "images_per_s": len(photos) / elapsed, "faces_per_s": faces / elapsed,
                      "cpu_ms_per_image": cpu * 1000 / len(photos)}), flush=True)


def bare_engine(stack: ServiceStack, photos: dict[str, bytes]) -> dict:
    from embeddings.engine import decode_image
    from embeddings.image_sources import image_limits
    from embeddings.indexing.services import JobOptions

    engine, options = stack.engine(), JobOptions().analyze_options()
    for data in list(photos.values())[:5]:  # warm up
        engine.analyze(decode_image(data, image_limits()), options)
    faces, started, cpu_started = 0, time.perf_counter(), time.process_time()
    for data in photos.values():
        faces += len(engine.analyze(decode_image(data, image_limits()), options).faces)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    return {"images": len(photos), "faces": faces, "seconds": elapsed, "cpu_ms_per_image": cpu * 1000 / len(photos),
            "images_per_s": len(photos) / elapsed, "faces_per_s": faces / elapsed, "load_average": os.getloadavg()}


class Workers:
    def __init__(self, stack: ServiceStack, concurrency: int):
        self.args = [sys.executable, "-m", "celery", "-A", "faceservice", "worker", "--loglevel", "WARNING",
                     "--pool", "prefork", "--concurrency", str(concurrency), "-n", f"bench{concurrency}@%h",
                     "--without-gossip", "--without-mingle"]
        self.env, self.log = stack.env, stack.run_dir / f"worker-{concurrency}.log"

    def __enter__(self) -> Workers:  # the workers are the process group led by self.process
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(self.args, env=self.env, cwd=PROJECT_DIR, stdout=out, stderr=out,
                                            start_new_session=True)
        return self

    def __exit__(self, *exc) -> None:
        import signal

        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)


def job_assets(names: list[str], server: ImageServer | None, photos: dict[str, bytes], run: str) -> list[dict]:
    if server is not None:
        return [{"asset_id": f"{run}/{name}", "image": {"url": server.url(name)}} for name in names]
    return [{"asset_id": f"{run}/{name}", "image": {"base64": base64.b64encode(photos[name]).decode()}}
            for name in names]


def run_job(stack: ServiceStack, assets: list[dict], timeout: float = 1800) -> tuple[str, float]:
    from embeddings.models import IndexJob
    from faceservice.tenancy import tenant_context

    started = time.perf_counter()
    response = stack.client.post("/v1/index-jobs", json={"assets": assets})
    if response.status_code != 202:
        raise RuntimeError(f"submit answered {response.status_code}: {response.text[:300]}")
    job_id = response.json()["id"]
    while time.perf_counter() - started < timeout:
        with tenant_context(stack.tenant_id):
            state = IndexJob.objects.values_list("state", flat=True).get(id=job_id)
        if state in IndexJob.TERMINAL_STATES:
            if state != "succeeded":
                raise RuntimeError(f"job {job_id} ended {state}")
            return job_id, time.perf_counter() - started
        time.sleep(0.05)
    raise RuntimeError(f"job {job_id} did not finish in {timeout:.0f}s")


def stage_means(stack: ServiceStack, job_id: str) -> dict:
    from embeddings.models import IndexJobAsset
    from faceservice.tenancy import tenant_context

    with tenant_context(stack.tenant_id):
        timings = list(IndexJobAsset.objects.filter(job_id=job_id).values_list("timings", flat=True))
    keys = sorted({key for t in timings for key in t})
    return {key: round(sum(t.get(key, 0) for t in timings) / len(timings), 1) for key in keys}


def service(stack: ServiceStack, concurrency: int, photos: dict[str, bytes], server: ImageServer | None,
            rounds: int = 1) -> list[dict]:
    """Time `rounds` jobs of all photos on one set of workers; the bare engine runs after each (workers idle)."""
    from embeddings.models import IndexJob
    from faceservice.tenancy import tenant_context

    names = list(photos)
    stack.new_tenant()
    results = []
    log(f"bare engine, {concurrency} process(es) at once")
    bare_before = bare_engines(stack, photos, concurrency)
    with Workers(stack, concurrency) as workers:
        log(f"{concurrency} worker process(es): warm-up job")
        run_job(stack, job_assets(names[:4 * concurrency], server, photos, "warm"), timeout=300)
        for round_ in range(rounds):
            log(f"{concurrency} worker process(es): timed job {round_ + 1}/{rounds} of {len(names)} photos")
            before = cpu_seconds(stack, workers.process.pid)
            job_id, elapsed = run_job(stack, job_assets(names, server, photos, f"timed{round_}"))
            after = cpu_seconds(stack, workers.process.pid)
            load = os.getloadavg()
            with tenant_context(stack.tenant_id):
                faces = IndexJob.objects.get(id=job_id).faces_indexed
            cpu = {part: round((after[part] - before[part]) * 1000 / len(names), 1) for part in after}
            results.append({"workers": concurrency, "round": round_ + 1, "images": len(names), "faces": faces,
                            "seconds": elapsed, "images_per_s": len(names) / elapsed, "faces_per_s": faces / elapsed,
                            "cpu_ms_per_image": cpu, "stage_means_ms": stage_means(stack, job_id),
                            "load_average": load})
            log(f"bare engine again, {concurrency} process(es) at once")
            results[-1]["bare_before"] = bare_before if round_ == 0 else results[-2]["bare_after"]
            results[-1]["bare_after"] = bare_engines(stack, photos, concurrency)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=240)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker process counts")
    parser.add_argument("--source", choices=("url", "inline"), default="url")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per process (both sides)")
    parser.add_argument("--rounds", type=int, default=1,
                        help="timed jobs per N, each between two bare runs (a shared box drifts)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    env = {"FETCH_ALLOWED_NETWORKS": "127.0.0.0/8", "FACE_MODEL_THREADS": str(args.threads),
           "INDEX_MAX_INFLIGHT_PER_TENANT": os.environ.get("INDEX_MAX_INFLIGHT_PER_TENANT", "32"),
           "LOG_LEVEL": "WARNING"}
    os.environ.update(env)
    paths = pick_photos(args.photos)
    photos = {f"{p.parent.name}-{p.name}": p.read_bytes() for p in paths}
    results: dict = {"photos": len(photos), "source": args.source, "threads": args.threads, "service": []}
    with ServiceStack(extra_env=env, web_workers=1, web_log=False) as stack, ImageServer(photos) as server:
        log("bare engine")
        bare = []
        for concurrency in (int(n) for n in args.workers.split(",")):
            for result in service(stack, concurrency, photos, server if args.source == "url" else None,
                                  args.rounds):
                before, after = result.pop("bare_before"), result.pop("bare_after")
                if concurrency == 1:
                    bare += [before, after] if result["round"] == 1 else [after]
                # The bare runs (as many processes as workers) just before and after this job:
                # the closest the box's load gets to the same.
                result["bare_images_per_s"] = (before["images_per_s"] + after["images_per_s"]) / 2
                result["bare_cpu_ms_per_image"] = (before["cpu_ms_per_image"] + after["cpu_ms_per_image"]) / 2
                results["service"].append(result)
        if not bare:  # no N=1 in --workers: one bare process for the summary line
            bare = [bare_engine(stack, photos)]
    bare_rate = sum(b["images_per_s"] for b in bare) / len(bare)
    bare_cpu = sum(b["cpu_ms_per_image"] for b in bare) / len(bare)
    results["bare"] = {"runs": bare, "images_per_s": bare_rate, "cpu_ms_per_image": bare_cpu,
                       "faces_per_s": sum(b["faces_per_s"] for b in bare) / len(bare)}
    results["load_average"] = os.getloadavg()
    print(f"\nbare engine, 1 process, {args.threads} thread(s): {bare_rate:.2f} images/s, "
          f"{results['bare']['faces_per_s']:.2f} faces/s  (runs: "
          + ", ".join(f"{b['images_per_s']:.2f} ({b['load_average'][0]:.1f})" for b in bare) + " = images/s (load))")
    print(f"bare engine CPU: {bare_cpu:.1f} ms per image; load average now {os.getloadavg()[0]:.1f}")
    print(f"{'workers':>7} {'images/s':>9} {'faces/s':>8} {'per process':>11} {'bare':>6} {'ratio':>6} "
          f"{'CPU ratio':>9} {'load':>5}  CPU ms per image / stage means (ms)")
    for r in results["service"]:
        per_process = r["images_per_s"] / r["workers"]
        r["ratio_per_process"] = per_process / r["bare_images_per_s"]
        # The same ratio in CPU: what one worker process would do with a core of its own.
        r["cpu_ratio"] = r["bare_cpu_ms_per_image"] / r["cpu_ms_per_image"]["workers"]
        print(f"{r['workers']:>7} {r['images_per_s']:>9.2f} {r['faces_per_s']:>8.2f} {per_process:>11.2f} "
              f"{r['bare_images_per_s']:>6.2f} {r['ratio_per_process']:>6.2f} {r['cpu_ratio']:>9.2f} "
              f"{r['load_average'][0]:>5.1f}  {r['cpu_ms_per_image']} / {r['stage_means_ms']}")
    for n in sorted({r["workers"] for r in results["service"]}):
        runs = [r for r in results["service"] if r["workers"] == n]
        if len(runs) > 1:
            print(f"N={n}: median ratio {statistics.median(r['ratio_per_process'] for r in runs):.2f}, "
                  f"median CPU ratio {statistics.median(r['cpu_ratio'] for r in runs):.2f} over {len(runs)} jobs")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    if sys.argv[1:] == ["--bare-worker"]:
        bare_worker()
    else:
        main()
