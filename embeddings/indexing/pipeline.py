"""The worker's side of an index job: assets from claim to faces.

claim (PostgreSQL) -> fetch the bytes (URL through the SSRF guard, S3, or the
sealed inline image) -> decode in memory -> detect + embed (the process-wide
engine) -> complete (faces + asset state in one transaction). Errors are
sorted into transient (retry with backoff) and permanent (the asset fails
with the error's code); see `failures.classify`.

A message names a batch of assets (INDEX_BATCH_SIZE). `run_batch` claims
them in one statement and pipelines them inside the worker process, because
onnxruntime releases the GIL while the model runs:

    task thread:   claim batch 1 | claim batch 2 (next message) ...
    fetch thread:  fetch+decode 1 | fetch+decode 2 | fetch+decode 3 | ...
    model thread:                 | analyze 1      | analyze 2      | ...
    store thread:                                  | ...            | commit 1..B (one transaction), refill

so a worker process spends its time in the model, and the store's work
(encrypt, faces, audit, counters) runs beside it. The task returns once its
batch is handed over (at most BATCHES_AHEAD batches wait for the model), so
Celery's round trip, the next claim and the next batch's first fetch overlap
the model too. That is safe because PostgreSQL, not the broker, decides:
every asset stays `processing` under its lease until its commit; if the
process dies before, the sweeper hands the asset out again (as for a worker
killed mid-asset), and a stale claim cannot commit (fencing by attempts).
`run_asset` is the same work for one asset, synchronously, in this thread.
"""

from __future__ import annotations

import functools
import logging
import queue
import ssl
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import httpx
from django.conf import settings
from django.db import DatabaseError, close_old_connections, connections

from embeddings.engine import decode_image
from embeddings.face_engine import face_engine
from embeddings.image_sources import fetch_bytes, image_limits
from embeddings.indexing import inline_images
from embeddings.indexing.claims import Claim, claim_asset, claim_assets, renew_leases
from embeddings.indexing.completion import Finished, complete_asset, complete_assets, fail_asset, retry_asset
from embeddings.indexing.dispatch import dispatch_tenant
from embeddings.indexing.failures import HttpStatusError, classify
from embeddings.indexing.models import IndexJobAsset
from embeddings.store.vector_index import ensure_vector_index
from faceservice.outbound.http import IMAGE_ACCEPT, REDIRECT_STATUSES, Timeouts, safe_request
from faceservice.tenancy import tenant_context

logger = logging.getLogger(__name__)

_indexed_models: set[str] = set()
SWITCH_INTERVAL_SECONDS = 0.0001  # see Pipeline


@dataclass(frozen=True)
class Processed:
    faces: list
    left_out: list
    model_id: str
    timings: dict[str, float]


def run_asset(*, tenant_id: str, job_asset_id: str) -> str:
    """Process one job asset if it is ours to process. Returns what happened (for logs and tests)."""
    claim = claim_asset(tenant_id=tenant_id, job_asset_id=job_asset_id)
    if claim is None:
        return "skipped"
    try:
        processed = process(claim)
        return complete_asset(claim=claim, faces=processed.faces, left_out=processed.left_out,
                              model_id=processed.model_id, timings=processed.timings)
    except Exception as exc:  # noqa: BLE001 - every failure is classified and recorded
        return record_failure(claim, exc)


def record_failure(claim: Claim, exc: BaseException, *, refill: bool = True) -> str:
    """Classify the error and retry the asset later or fail it for good."""
    failure = classify(exc)
    where = {"tenant_id": claim.tenant_id, "job_asset_id": claim.job_asset_id}
    if failure.code == "internal_error":
        logger.error("index asset failed unexpectedly", exc_info=exc, extra=where)
    else:
        logger.info("index asset failed", extra={**where, "code": failure.code, "transient": failure.transient,
                                                  "attempt": claim.attempt})
    if failure.transient:
        return retry_asset(claim=claim, failure=failure, refill=refill)
    return fail_asset(claim=claim, failure=failure, refill=refill)


def process(claim: Claim) -> Processed:
    """Fetch, decode and analyse; nothing is written. The image lives in memory only."""
    started = time.perf_counter()
    data = fetch(claim)
    fetched = time.perf_counter()
    image = decode_image(data, image_limits())
    del data
    engine = face_engine()
    analysis = engine.analyze(image, claim.options.analyze_options(claim.subject_id))
    del image
    analysed = time.perf_counter()
    ensure_index(engine.model_id, engine.dimension)
    return Processed(faces=list(analysis.faces), left_out=list(analysis.left_out), model_id=analysis.model_id,
                     timings={"fetch_ms": round((fetched - started) * 1000, 1),
                              "analyze_ms": round((analysed - fetched) * 1000, 1)})


def fetch(claim: Claim) -> bytes:
    if claim.source_kind == IndexJobAsset.SourceKind.INLINE:
        with tenant_context(claim.tenant_id):
            return inline_images.read(tenant_id=claim.tenant_id, job_id=claim.job_id,
                                      job_asset_id=claim.job_asset_id)
    if claim.source_kind == IndexJobAsset.SourceKind.URL:
        return fetch_url(claim.source["url"])
    return fetch_bytes(claim.image_source())


@functools.cache
def tls_context() -> ssl.SSLContext:
    # Building a context loads the CA bundle (tens of ms): once per process, not per image.
    return httpx.create_ssl_context()


def fetch_url(url: str) -> bytes:
    """Like fetch_image_url, but keeps the status so 5xx/429 can be told from 404."""
    response = safe_request("GET", url, headers={"Accept": IMAGE_ACCEPT},
                            timeout=Timeouts.of(settings.FETCH_TIMEOUT_SECONDS), max_bytes=settings.MAX_IMAGE_BYTES,
                            allowed_networks=settings.FETCH_ALLOWED_NETWORKS, ssl_context=tls_context())
    if response.status_code in REDIRECT_STATUSES or not response.is_success:
        raise HttpStatusError(response.status_code)
    return response.content


def ensure_index(model_id: str, dimension: int) -> None:
    """Create the model's HNSW index the first time this process sees the model.

    Outside any transaction that writes faces (CREATE INDEX would wait on it).
    Failing here is not fatal: search falls back to exact scans.
    """
    if model_id in _indexed_models:
        return
    try:
        ensure_vector_index(model_id, dimension)
    except DatabaseError:
        logger.warning("could not create the vector index; will try again", exc_info=True)
        return
    _indexed_models.add(model_id)


# --- Batches, pipelined -------------------------------------------------------------------

@dataclass(frozen=True)
class Prepared:
    """A fetched and decoded image (memory only), or why it could not be."""

    image: object | None
    error: BaseException | None
    timings: dict[str, float]


@dataclass(frozen=True)
class Outcome:
    """What the store thread is handed: an analysed asset or a failure, and whether it ends its batch."""

    claim: Claim
    finished: Finished | None
    error: BaseException | None
    last: bool


def run_batch(*, tenant_id: str, job_asset_ids: list[str], wait: bool = False) -> str:
    """Claim a message's assets and hand them to the pipeline (module docstring). A summary for logs.

    Returns once the batch is handed over, so that Celery fetches the next
    message while the model works on this one; it blocks first while the
    process already holds BATCHES_AHEAD batches not yet through the model.
    wait=True returns only after every claimed asset was committed (tests,
    and callers that need the results).
    """
    worker = pipeline()
    if not worker.slots.acquire(timeout=STUCK_AFTER_SECONDS):
        # Two batches have been before the model for minutes: claim nothing more here
        # (the message is sent again by the sweeper; the held assets' leases are still renewed).
        raise RuntimeError("the index pipeline of this process is stuck")
    try:
        claims = claim_assets(tenant_id=tenant_id, job_asset_ids=job_asset_ids)
    except BaseException:
        worker.slots.release()
        raise
    if not claims:
        worker.slots.release()
        return "skipped"
    worker.submit(claims)
    if wait:
        worker.wait()
    return f"{len(claims)} claimed"


def prepare(claim: Claim) -> Prepared:
    """Fetch and decode one image (the fetch thread). Exceptions are handed on, not raised."""
    started, cpu = time.perf_counter(), time.thread_time()
    try:
        close_old_connections()  # this thread's own connection (inline images)
        data = fetch(claim)
        fetched = time.perf_counter()
        image = decode_image(data, image_limits())
    except Exception as exc:  # noqa: BLE001 - classified by the store thread, like run_asset does
        return Prepared(None, exc, {})
    del data
    return Prepared(image, None, {"fetch_ms": round((fetched - started) * 1000, 1),
                                  "decode_ms": round((time.perf_counter() - fetched) * 1000, 1),
                                  "fetch_cpu_ms": round((time.thread_time() - cpu) * 1000, 1)})


def analyse(claim: Claim, prepared: Prepared) -> Outcome:
    """Detect and embed (this thread: the model's). Nothing is written."""
    if prepared.error is not None:
        return Outcome(claim, None, prepared.error, last=False)
    try:
        started, cpu = time.perf_counter(), time.thread_time()
        engine = face_engine()
        analysis = engine.analyze(prepared.image, claim.options.analyze_options(claim.subject_id))
        # CPU per thread as well as wall: on a busy machine wall time says little about where work goes.
        timings = {"fetch_ms": prepared.timings["fetch_ms"],
                   "analyze_ms": round(prepared.timings["decode_ms"] + (time.perf_counter() - started) * 1000, 1),
                   "fetch_cpu_ms": prepared.timings["fetch_cpu_ms"],
                   "model_cpu_ms": round((time.thread_time() - cpu) * 1000, 1)}
        ensure_index(engine.model_id, engine.dimension)
    except Exception as exc:  # noqa: BLE001 - classified by the store thread
        return Outcome(claim, None, exc, last=False)
    finished = Finished(claim=claim, faces=list(analysis.faces), left_out=list(analysis.left_out),
                        model_id=analysis.model_id, timings=timings)
    return Outcome(claim, finished, None, last=False)


BATCHES_AHEAD = 2  # batches a process holds before the model: the one in it and the next one
STUCK_AFTER_SECONDS = 300  # a task waiting this long for the model gives its message up


class Heartbeat:
    """Renews the leases of every claim this process holds, every quarter of INDEX_ASSET_LEASE_SECONDS.

    A claim is held from its hand-over to the pipeline until its commit (or
    recorded failure). Leases are short, so that the assets of a SIGKILLed
    worker are taken over within a lease and a sweep; this thread keeps those
    of a live worker, however long its batches wait for the model. A renewal
    that fails (the database restarting) is tried again on the next beat; a
    claim whose lease ran out meanwhile was taken over and cannot commit.
    """

    def __init__(self) -> None:
        self._held: dict[str, Claim] = {}
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self.thread = threading.Thread(target=self._beat, name="index-heartbeat", daemon=True)
        self.thread.start()

    def hold(self, claims: list[Claim]) -> None:
        with self._lock:
            self._held.update((claim.job_asset_id, claim) for claim in claims)

    def release(self, claims: list[Claim]) -> None:
        with self._lock:
            for claim in claims:
                self._held.pop(claim.job_asset_id, None)

    def held(self) -> list[Claim]:
        with self._lock:
            return list(self._held.values())

    def renew(self) -> int:
        """Renew every held lease now, one statement per tenant. How many were renewed."""
        by_tenant: dict[str, list[Claim]] = {}
        for claim in self.held():
            by_tenant.setdefault(claim.tenant_id, []).append(claim)
        close_old_connections()  # a connection broken by a database restart is replaced
        return sum(renew_leases(tenant_id=tenant_id, claims=claims) for tenant_id, claims in by_tenant.items())

    def stop(self) -> None:
        self._stopped.set()
        self.thread.join()

    def _beat(self) -> None:
        while not self._stopped.wait(settings.INDEX_ASSET_LEASE_SECONDS / 4):
            try:
                self.renew()
            except Exception:  # tried again on the next beat; the leases cover the rest
                logger.warning("index lease heartbeat failed; will try again", exc_info=True)
        connections.close_all()  # this thread's own connection


class Pipeline:
    """A worker process's model, fetch, store and heartbeat threads (made on first use).

    The Celery task's thread only claims and hands batches over; a dedicated
    model thread analyses them, so the broker round trip, the claim and the
    next batch's first fetch happen while the model is busy. The heartbeat
    keeps the leases of every claim handed over until it is stored.
    """

    def __init__(self) -> None:
        # The model's thread takes the GIL back after every onnxruntime call;
        # with the default 5 ms switch interval it can wait that long each
        # time behind the store or fetch thread's Python, several times per
        # image. 0.1 ms measured best of 5 / 0.5 / 0.1 ms (BENCHMARKS.md).
        sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
        self.slots = threading.BoundedSemaphore(BATCHES_AHEAD)
        self.fetcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="index-fetch")
        self.batches: queue.Queue[tuple[list[Claim], Future] | None] = queue.Queue()
        # Bounded: if the store falls behind, the model waits instead of piling up results.
        self.queue: queue.Queue[Outcome | None] = queue.Queue(maxsize=2 * max(1, settings.INDEX_BATCH_SIZE))
        self.heartbeat = Heartbeat()
        self.model_thread = threading.Thread(target=self._analyse_batches, name="index-model", daemon=True)
        self.thread = threading.Thread(target=self._run, name="index-store", daemon=True)
        self.model_thread.start()
        self.thread.start()

    def submit(self, claims: list[Claim]) -> None:
        """Hand a claimed batch to the model thread; its first image is fetched right away."""
        self.heartbeat.hold(claims)
        self.batches.put((claims, self.fetcher.submit(prepare, claims[0])))

    def store(self, outcome: Outcome, *, last: bool) -> None:
        self.queue.put(Outcome(outcome.claim, outcome.finished, outcome.error, last=last))

    def wait(self) -> None:
        """Until everything handed over so far is analysed and committed (or recorded as failed)."""
        self.batches.join()
        self.queue.join()

    def close(self) -> None:
        self.batches.put(None)
        self.model_thread.join()
        self.queue.put(None)
        self.thread.join()
        self.fetcher.submit(connections.close_all).result()
        self.fetcher.shutdown(wait=True)
        self.heartbeat.stop()

    def _analyse_batches(self) -> None:
        while True:
            item = self.batches.get()
            if item is None:
                connections.close_all()  # this thread's own connection (leases, the vector index)
                self.batches.task_done()
                return
            try:
                self._analyse(*item)
            except Exception:  # the model thread must survive anything; leases cover what was lost
                logger.exception("index model thread: could not finish a batch")
                self.heartbeat.release(item[0])  # left to their leases, which now run out
            finally:
                self.slots.release()
                self.batches.task_done()

    def _analyse(self, claims: list[Claim], first: Future) -> None:
        ahead = first
        for i, claim in enumerate(claims):
            current = ahead
            if i + 1 < len(claims):
                ahead = self.fetcher.submit(prepare, claims[i + 1])
            self.store(analyse(claim, current.result()), last=i == len(claims) - 1)

    def _run(self) -> None:
        group: list[Outcome] = []
        while True:
            outcome = self.queue.get()
            if outcome is None:
                self._flush(group)
                connections.close_all()  # this thread's own connection
                self.queue.task_done()
                return
            if group and group[0].claim.tenant_id != outcome.claim.tenant_id:
                self._flush(group)
            group.append(outcome)
            if outcome.last or len(group) >= max(1, settings.INDEX_BATCH_SIZE):
                self._flush(group)

    def _flush(self, group: list[Outcome]) -> None:
        """Commit the group: its analysed assets in one transaction, failures one by one; then refill."""
        if not group:
            return
        try:
            close_old_connections()
            tenant_id = group[0].claim.tenant_id
            ready = [o.finished for o in group if o.finished is not None]
            try:
                complete_assets(finished=ready, refill=False)
            except Exception:  # one bad asset must not fail the others: store them one by one
                logger.info("micro-batch commit failed; storing its assets one by one", exc_info=True)
                for item in ready:
                    _guarded(item.claim, lambda i=item: complete_asset(
                        claim=i.claim, faces=i.faces, left_out=i.left_out, model_id=i.model_id,
                        timings=i.timings, refill=False))
            for outcome in group:
                if outcome.error is not None:
                    record_failure(outcome.claim, outcome.error, refill=False)
            if any(o.last for o in group):
                dispatch_tenant(tenant_id=tenant_id)
        except Exception:  # the store thread must survive anything; leases cover what was lost
            logger.exception("index store thread: could not finish a group")
        finally:
            # Stored, recorded, or left to their leases (which now run out): no longer renewed.
            self.heartbeat.release([o.claim for o in group])
            for _ in group:
                self.queue.task_done()
            group.clear()


def _guarded(claim: Claim, store) -> str:
    try:
        return store()
    except Exception as exc:  # noqa: BLE001 - classified and recorded
        return record_failure(claim, exc, refill=False)


_pipeline: Pipeline | None = None
_pipeline_lock = threading.Lock()


def pipeline() -> Pipeline:
    global _pipeline
    with _pipeline_lock:
        if _pipeline is not None and not (_pipeline.model_thread.is_alive() and _pipeline.thread.is_alive()):
            logger.error("index pipeline thread died; starting a new pipeline")  # its batches: leases
            _pipeline.heartbeat.stop()  # else it would renew the dead pipeline's claims for ever
            _pipeline = None
        if _pipeline is None:
            _pipeline = Pipeline()
        return _pipeline


def drain_pipeline() -> None:
    """Commit what the store thread holds and stop it (a worker process shutting down)."""
    global _pipeline
    with _pipeline_lock:
        if _pipeline is not None:
            _pipeline.close()
            _pipeline = None
