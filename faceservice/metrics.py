"""Prometheus metrics: every family the service exports, and the small functions that feed them.

docs/OPERATIONS.md, "Metrics", lists the families with their meaning; deploy/prometheus/
holds the alert rules and deploy/grafana/ the dashboard built on them.

Labels are bounded: route patterns (never paths with ids), methods, status codes,
stage, strategy, outcome and error code names. No tenant, subject, asset, face or
key id, no key and nothing of an image is ever a label: a tenant's traffic is
in the audit log, not here.

Where the numbers are served. Web (gunicorn) and workers (Celery prefork) are each
several processes; a scrape must see all of them. prometheus_client's multiprocess
mode does that: every process writes its values to memory-mapped files in
PROMETHEUS_MULTIPROC_DIR, and the one serving process (gunicorn's arbiter, Celery's
main process, beat) sums them when scraped, on a port of its own
(METRICS_WEB_PORT, METRICS_WORKER_PORT, METRICS_BEAT_PORT), never the API's port.
The mode is chosen when prometheus_client is first imported, so the directory is
set, and emptied, before that: deploy/gunicorn.conf.py and faceservice/celery.py do
it. Without the variable (tests, `manage.py`) the values live in this process and
`exposition()` serves them from there.

Measured (`python -m faceservice.metrics`, with and without PROMETHEUS_MULTIPROC_DIR,
on the 2-core development machine): a counter increment costs 1.6 µs in memory and
3.1 µs in multiprocess mode, a histogram observation 2.9 µs and 5.0 µs. A request
records one of each, ~10 µs: nothing beside a search's milliseconds. A scrape of every
family takes ~9 ms from one process's values, 30-55 ms from five processes' files (the
machine busy with a test run). Why not /metrics on the API port behind a token: in multiprocess
mode any worker could answer it, but it would share the API's listener, its rate
limits and its exposure; a port of its own is reachable only where the operator
routes it (docs/OPERATIONS.md, "Metrics").
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Iterable, Mapping

from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

logger = logging.getLogger(__name__)

MULTIPROC_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"
NAMESPACE = "faceservice"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LOAD_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

# --- HTTP (web) -------------------------------------------------------------------------

HTTP_REQUESTS = Counter("http_requests", "HTTP requests answered, by route pattern, method and status",
                        ["route", "method", "status"], namespace=NAMESPACE)
HTTP_DURATION = Histogram("http_request_duration_seconds", "Time from the first middleware to the response",
                          ["route", "method"], namespace=NAMESPACE, buckets=LATENCY_BUCKETS)
RATE_LIMITED = Counter("rate_limit_refusals", "Requests refused by a rate limit (429), by limit",
                       ["scope"], namespace=NAMESPACE)

# --- Search (web) -----------------------------------------------------------------------

# The stages of a search's timings_ms (embeddings/search/services.py); others count as "other".
SEARCH_STAGES = ("decode", "detect_embed", "vector_search", "gallery_scan", "rerank", "search")
SEARCH_STRATEGIES = ("memory", "exact", "hnsw", "hnsw-collection")
SEARCH_STAGE_DURATION = Histogram("search_stage_duration_seconds", "Time of each stage of a search",
                                  ["stage"], namespace=NAMESPACE, buckets=STAGE_BUCKETS)
SEARCHES = Counter("searches", "Searches by strategy (memory gallery, exact scan, HNSW index)",
                   ["strategy"], namespace=NAMESPACE)

# --- In-memory galleries (web) ---------------------------------------------------------

GALLERY_FACES = Gauge("gallery_faces", "Faces held by the in-memory search galleries (all web processes)",
                      namespace=NAMESPACE, multiprocess_mode="livesum")
GALLERY_BYTES = Gauge("gallery_bytes", "Bytes held by the in-memory search galleries (all web processes)",
                      namespace=NAMESPACE, multiprocess_mode="livesum")
GALLERY_LOADS = Counter("gallery_loads", "Galleries loaded in full: inline (by a search) or by a thread beside",
                        ["mode"], namespace=NAMESPACE)
GALLERY_LOAD_DURATION = Histogram("gallery_load_duration_seconds", "Time to load a gallery in full",
                                  ["mode"], namespace=NAMESPACE, buckets=LOAD_BUCKETS)
GALLERY_EVICTIONS = Counter("gallery_evictions", "Galleries dropped: over the byte budget, or idle",
                            ["reason"], namespace=NAMESPACE)
GALLERY_FALLBACKS = Counter("gallery_fallbacks", "Unfiltered searches answered by pgvector instead of a gallery",
                            ["reason"], namespace=NAMESPACE)
GALLERY_FALLBACK_REASONS = ("loading", "too_large", "disabled")

# --- Index jobs (workers; queue gauges from the sweeper) ------------------------------

INDEX_ASSETS = Counter("index_assets", "Index assets finished by a worker, by outcome",
                       ["outcome"], namespace=NAMESPACE)
INDEX_ASSET_OUTCOMES = ("succeeded", "failed", "retrying", "stale")
INDEX_FAILURES = Counter("index_asset_failures", "Index asset failures by error code and whether retried",
                         ["code", "transient"], namespace=NAMESPACE)
INDEX_DISPATCHED = Counter("index_assets_dispatched", "Assets moved from pending to the broker queue",
                           namespace=NAMESPACE)
INDEX_LEASE_RECOVERIES = Counter("index_lease_recoveries", "Assets whose worker died, taken back by the sweeper",
                                 namespace=NAMESPACE)
INDEX_RESENT = Counter("index_messages_resent", "Messages sent again by the sweeper, by why",
                       ["reason"], namespace=NAMESPACE)
INDEX_QUEUE = Gauge("index_assets_in_state", "Unfinished index assets by state (read by the sweeper)",
                    ["state"], namespace=NAMESPACE, multiprocess_mode="mostrecent")
INDEX_QUEUE_STATES = ("pending", "queued", "processing", "retry_wait")
INDEX_QUEUE_LAG = Gauge("index_queue_lag_seconds", "Age of the oldest asset waiting in the broker queue "
                        "(read by the sweeper)", namespace=NAMESPACE, multiprocess_mode="mostrecent")

# --- Webhooks (workers) -----------------------------------------------------------------

WEBHOOK_ATTEMPTS = Counter("webhook_attempts", "Webhook delivery attempts by outcome",
                           ["outcome"], namespace=NAMESPACE)
WEBHOOK_OUTCOMES = ("succeeded", "retrying", "failed", "stale")
WEBHOOK_ERRORS = Counter("webhook_attempt_errors", "Failed webhook attempts by error code",
                         ["error"], namespace=NAMESPACE)
WEBHOOK_DURATION = Histogram("webhook_attempt_duration_seconds", "Time of a webhook POST",
                             namespace=NAMESPACE, buckets=LATENCY_BUCKETS)
WEBHOOK_DISABLED = Counter("webhook_endpoints_disabled", "Endpoints disabled after persistent failure",
                           namespace=NAMESPACE)
WEBHOOK_LAG = Gauge("webhook_delivery_lag_seconds", "How long the oldest due delivery has waited "
                    "(read by the sweeper)", namespace=NAMESPACE, multiprocess_mode="mostrecent")
WEBHOOK_DUE = Gauge("webhook_deliveries_due", "Deliveries due and not yet attempted (read by the sweeper)",
                    namespace=NAMESPACE, multiprocess_mode="mostrecent")

# --- KMS (web and workers) --------------------------------------------------------------

KMS_CALLS = Counter("kms_calls", "Calls to the KMS, by provider and operation",
                    ["provider", "operation"], namespace=NAMESPACE)
KMS_ERRORS = Counter("kms_errors", "KMS calls that failed, by provider, operation and error",
                     ["provider", "operation", "error"], namespace=NAMESPACE)
KMS_DURATION = Histogram("kms_call_duration_seconds", "Time of a KMS call", ["provider", "operation"],
                         namespace=NAMESPACE, buckets=LATENCY_BUCKETS)
KMS_CACHE = Counter("kms_cache_lookups", "Plaintext data key cache lookups: hit, or miss (a KMS call)",
                    ["result"], namespace=NAMESPACE)

# --- Audit (beat's verification task, the anomaly rules) -------------------------------

AUDIT_VERIFICATIONS = Counter("audit_verifications", "Audit chain verifications by result",
                              ["result"], namespace=NAMESPACE)
AUDIT_LAST_VERIFICATION_OK = Gauge("audit_last_verification_ok", "1 when the last chain verification passed, "
                                   "0 when it failed", namespace=NAMESPACE, multiprocess_mode="mostrecent")
ANOMALIES = Counter("anomalies", "Anomalous access found in the audit log, by rule",
                    ["rule"], namespace=NAMESPACE)

# --- Celery (workers, beat, and the web process that publishes) -----------------------

TASKS = Counter("celery_tasks", "Celery tasks run, by task name and state", ["task", "state"],
                namespace=NAMESPACE)
TASK_DURATION = Histogram("celery_task_duration_seconds", "Time a Celery task ran", ["task"],
                          namespace=NAMESPACE, buckets=LATENCY_BUCKETS)
TASKS_PUBLISHED = Counter("celery_tasks_published", "Celery messages published, by task name", ["task"],
                          namespace=NAMESPACE)

_PLAIN_LABEL = re.compile(r"[^a-z0-9_.-]+")


def _bounded(value: str, allowed: Iterable[str] | None = None) -> str:
    """A label value from a known set, or reduced to plain short words (never an id: callers pass names)."""
    if allowed is not None:
        return value if value in allowed else "other"
    return _PLAIN_LABEL.sub("_", value.lower())[:48] or "unknown"


def _initialise() -> None:
    """Create the children of bounded labels at 0, so a rate or an alert sees them before the first event."""
    for stage in SEARCH_STAGES:
        SEARCH_STAGE_DURATION.labels(stage=stage)
    for strategy in SEARCH_STRATEGIES:
        SEARCHES.labels(strategy=strategy)
    for reason in GALLERY_FALLBACK_REASONS:
        GALLERY_FALLBACKS.labels(reason=reason)
    for mode in ("inline", "background"):
        GALLERY_LOADS.labels(mode=mode)
        GALLERY_LOAD_DURATION.labels(mode=mode)
    for reason in ("budget", "idle"):
        GALLERY_EVICTIONS.labels(reason=reason)
    for outcome in INDEX_ASSET_OUTCOMES:
        INDEX_ASSETS.labels(outcome=outcome)
    for reason in ("never_picked_up", "retry_lost"):
        INDEX_RESENT.labels(reason=reason)
    for outcome in WEBHOOK_OUTCOMES:
        WEBHOOK_ATTEMPTS.labels(outcome=outcome)
    for result in ("hit", "miss"):
        KMS_CACHE.labels(result=result)
    for result in ("ok", "failed"):
        AUDIT_VERIFICATIONS.labels(result=result)


_initialise()


# --- What other modules call ------------------------------------------------------------

def observe_request(*, route: str, method: str, status: int, seconds: float) -> None:
    """One answered HTTP request (faceservice/api/middleware.py). `route` is the URL pattern, never the path."""
    method = _bounded(method.upper(), ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"))
    HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    HTTP_DURATION.labels(route=route, method=method).observe(seconds)


def count_rate_limited(scope: str) -> None:
    """A request refused by the rate limit of `scope` (`api_key`, `client_ip`: faceservice/api/throttles.py)."""
    RATE_LIMITED.labels(scope=_bounded(scope)).inc()


def observe_search_stages(timings_ms: Mapping[str, float], strategy: str | None = None) -> None:
    """A search's per-stage times, as its `timings_ms` holds them (milliseconds), and its strategy.

    Called by the search services once per search or compare; unknown stage names
    count as `other`, so the label stays bounded whatever the dict grows.
    """
    for stage, milliseconds in timings_ms.items():
        SEARCH_STAGE_DURATION.labels(stage=_bounded(stage, SEARCH_STAGES)).observe(max(milliseconds, 0.0) / 1000)
    if strategy:
        SEARCHES.labels(strategy=_bounded(strategy, SEARCH_STRATEGIES)).inc()


def set_gallery_totals(*, faces: int, nbytes: int) -> None:
    """What this process's galleries hold now (embeddings/search/gallery.py); summed over live processes."""
    GALLERY_FACES.set(faces)
    GALLERY_BYTES.set(nbytes)


def observe_gallery_load(*, mode: str, seconds: float) -> None:
    """A gallery loaded in full, `inline` (a search waited) or `background` (a thread beside the searches)."""
    GALLERY_LOADS.labels(mode=_bounded(mode, ("inline", "background"))).inc()
    GALLERY_LOAD_DURATION.labels(mode=_bounded(mode, ("inline", "background"))).observe(seconds)


def count_gallery_evictions(reason: str, n: int = 1) -> None:
    """Galleries dropped, for `budget` (SEARCH_MEMORY_MAX_BYTES) or `idle` (SEARCH_MEMORY_IDLE_SECONDS)."""
    if n:
        GALLERY_EVICTIONS.labels(reason=_bounded(reason, ("budget", "idle"))).inc(n)


def count_gallery_fallback(reason: str) -> None:
    """An unfiltered search that pgvector answered: `loading`, `too_large` (over the budget) or `disabled`."""
    GALLERY_FALLBACKS.labels(reason=_bounded(reason, GALLERY_FALLBACK_REASONS)).inc()


def count_index_assets(outcome: str, n: int = 1) -> None:
    """Index assets finished by a worker: `succeeded`, `failed`, `retrying` or `stale` (completion.py's words)."""
    if n:
        INDEX_ASSETS.labels(outcome=_bounded(outcome, INDEX_ASSET_OUTCOMES)).inc(n)


def count_index_failure(code: str, *, transient: bool) -> None:
    """An index asset failure as classified (embeddings/indexing/failures.py): its stable error code."""
    INDEX_FAILURES.labels(code=_bounded(code), transient="true" if transient else "false").inc()


def set_index_queue(counts: Mapping[str, int], *, oldest_queued_seconds: float) -> None:
    """The unfinished assets by state and the age of the oldest queued one (the sweeper, every sweep)."""
    for state in INDEX_QUEUE_STATES:
        INDEX_QUEUE.labels(state=state).set(counts.get(state, 0))
    INDEX_QUEUE_LAG.set(oldest_queued_seconds)


def observe_webhook_attempt(*, outcome: str, error: str, seconds: float) -> None:
    """One webhook attempt (tenants/webhooks/delivery.py): its outcome, error code ('' when none) and time."""
    WEBHOOK_ATTEMPTS.labels(outcome=_bounded(outcome, WEBHOOK_OUTCOMES)).inc()
    if error:
        WEBHOOK_ERRORS.labels(error=_bounded(error)).inc()
    WEBHOOK_DURATION.observe(seconds)


def set_webhook_backlog(*, due: int, oldest_due_seconds: float) -> None:
    """Deliveries due and the longest wait among them (the webhook sweeper)."""
    WEBHOOK_DUE.set(due)
    WEBHOOK_LAG.set(oldest_due_seconds)


def observe_kms_call(*, provider: str, operation: str, seconds: float, error: str | None = None) -> None:
    """One KMS call (tenants/kms/base.py): provider `local`/`aws`, operation, and the error class if it failed."""
    provider, operation = _bounded(provider), _bounded(operation)
    KMS_CALLS.labels(provider=provider, operation=operation).inc()
    KMS_DURATION.labels(provider=provider, operation=operation).observe(seconds)
    if error is not None:
        KMS_ERRORS.labels(provider=provider, operation=operation, error=_bounded(error)).inc()


def count_kms_cache(hit: bool) -> None:
    """A plaintext data key cache lookup (tenants/kms/cache.py)."""
    KMS_CACHE.labels(result="hit" if hit else "miss").inc()


def audit_verification(ok: bool) -> None:
    """The result of one audit chain verification run (audit/: the periodic verify task)."""
    AUDIT_VERIFICATIONS.labels(result="ok" if ok else "failed").inc()
    AUDIT_LAST_VERIFICATION_OK.set(1 if ok else 0)


def count_anomaly(rule: str) -> None:
    """One anomaly found by the audit log's rules; `rule` is the rule's name (e.g. `refusal_burst`), never an id."""
    ANOMALIES.labels(rule=_bounded(rule)).inc()


def observe_task(*, task: str, state: str, seconds: float | None = None) -> None:
    """A Celery task that ended (faceservice/celery.py signals): `succeeded`, `failed` or `retried`."""
    TASKS.labels(task=_bounded(task), state=_bounded(state)).inc()
    if seconds is not None:
        TASK_DURATION.labels(task=_bounded(task)).observe(seconds)


def count_task_published(task: str) -> None:
    """A Celery message published (faceservice/celery.py signals)."""
    TASKS_PUBLISHED.labels(task=_bounded(task)).inc()


# --- Serving ------------------------------------------------------------------------------

def multiprocess_mode() -> bool:
    return bool(os.environ.get(MULTIPROC_VARIABLE))


def registry() -> CollectorRegistry:
    """What a scrape reads: every process's files in multiprocess mode, else this process's values."""
    if not multiprocess_mode():
        return REGISTRY
    collected = CollectorRegistry()
    multiprocess.MultiProcessCollector(collected)
    return collected


def exposition() -> bytes:
    """The text a scrape gets (Prometheus text format)."""
    return generate_latest(registry())


def serve(port: int, address: str = "0.0.0.0") -> object | None:  # noqa: S104 - the metrics port, not the API's
    """Serve the metrics on their own port from a thread of this process; None when off (port 0) or taken.

    A port that is taken must not stop the web or worker process: it is logged, and
    the process runs without serving metrics.
    """
    if port <= 0:
        return None
    try:
        server, _ = start_http_server(port, addr=address, registry=registry())
    except OSError as error:
        logger.warning("metrics port %s not served: %s", port, error)
        return None
    logger.info("metrics served on %s:%s", address, port)
    return server


def process_exited(pid: int) -> None:
    """A process of the group ended: its `livesum` gauges (gallery sizes) no longer count."""
    if multiprocess_mode():
        multiprocess.mark_process_dead(pid)


def _bench(rounds: int = 200_000) -> None:
    """Cost of one counter increment and one histogram observation in this mode (see the module docstring)."""
    counter = HTTP_REQUESTS.labels(route="bench", method="GET", status="200")
    histogram = HTTP_DURATION.labels(route="bench", method="GET")
    started = time.perf_counter()
    for _ in range(rounds):
        counter.inc()
    inc_us = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    for _ in range(rounds):
        histogram.observe(0.01)
    observe_us = (time.perf_counter() - started) / rounds * 1e6
    started = time.perf_counter()
    size = len(exposition())
    scrape_ms = (time.perf_counter() - started) * 1000
    print(f"multiprocess={multiprocess_mode()} inc={inc_us:.2f}us observe={observe_us:.2f}us "
          f"scrape={scrape_ms:.1f}ms ({size} bytes)")


if __name__ == "__main__":
    _bench()
