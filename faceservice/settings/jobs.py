"""Index jobs (embeddings/indexing; docs/JOBS.md), inline images, and outbound fetches."""

from pydantic import Field

from faceservice.settings.base import PRODUCTION
from faceservice.settings.environment import CommaList, Flag, Variables, export, read, shown


class Jobs(Variables):
    """Index jobs and outbound fetches"""

    INDEX_JOB_MAX_ASSETS: int = Field(1000, description="assets per index job submission")
    # A worker process takes up to two batches ahead, so one tenant keeps P processes
    # busy only with >= 2 * P * INDEX_BATCH_SIZE slots: 32 = two processes. With 16,
    # one process took both batches and two processes indexed one tenant no faster
    # than one (docs/BENCHMARKS.md, "Indexing").
    INDEX_MAX_INFLIGHT_PER_TENANT: int = Field(
        32, description="assets of one tenant queued or running at once (fairness; the rest wait in PostgreSQL "
        "and are dispatched round-robin as slots free). One tenant keeps P worker processes busy only with at "
        "least 2 × P × `INDEX_BATCH_SIZE`")
    # 8 (with 16 slots) measured 0.90 of the bare engine per process against 0.85
    # for 4 on a quiet box (docs/BENCHMARKS.md, "Indexing"); 16 gained nothing more.
    INDEX_BATCH_SIZE: int = Field(
        8, description="assets per index message: claimed together, pipelined in one worker process (fetch, "
        "model and store overlap) and committed in one transaction; `1` turns batching off. Keep it at most a "
        "quarter of `INDEX_MAX_INFLIGHT_PER_TENANT` so that two worker processes can serve one tenant")
    # Short, and renewed by each worker process's heartbeat (every quarter lease) while it
    # holds the asset: a SIGKILLed worker's assets are taken over within a lease and a sweep.
    INDEX_ASSET_LEASE_SECONDS: int = Field(
        30, description="a worker's hold on an asset before another may take it; renewed every quarter of it "
        "while the worker holds the asset, so it bounds the recovery after a worker dies, not the asset's time")
    INDEX_REQUEUE_AFTER_SECONDS: int = Field(
        30, description="an asset queued (or due to retry) whose message nobody took for this long is sent "
        "again: the broker lost it (restart) or its worker died before claiming it. A duplicate is harmless")
    INDEX_MAX_ATTEMPTS: int = Field(5, description="attempts per asset (transient failures, lost workers)")
    INDEX_RETRY_BASE_SECONDS: float = Field(2.0, description="first retry delay")
    INDEX_RETRY_MAX_SECONDS: float = Field(
        300.0, description="longest retry delay; keep it under `CELERY_VISIBILITY_TIMEOUT`")
    INDEX_JOB_RETENTION_DAYS: int = Field(30, description="finished jobs and their results are kept this long")
    INDEX_ALLOW_HTTP_URLS: Flag = Field(
        default_factory=lambda: not PRODUCTION, json_schema_extra=shown("off in production, on elsewhere"),
        description="allow `http://` image URLs (else `https://` only)")
    INLINE_IMAGE_TTL_SECONDS: int = Field(
        24 * 3600, description="inline images (encrypted) waiting for a worker expire after this")
    S3_ALLOWED_BUCKETS: CommaList = Field(
        [], json_schema_extra=shown("empty (any the credentials reach)"), description="buckets index jobs may name")
    FETCH_ALLOWED_NETWORKS: CommaList = Field(
        [], description="private networks image URLs and webhooks may reach anyway (CIDRs; for tests and "
        "private deployments)")
    FETCH_TIMEOUT_SECONDS: float = Field(10.0, description="timeout of one outbound fetch")


export(read(Jobs), globals())
