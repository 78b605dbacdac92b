"""Celery: the broker, the queues, and the one beat schedule of every periodic task."""

from pydantic import Field

from faceservice.settings.anomalies import ANOMALY_DETECT_INTERVAL_SECONDS
from faceservice.settings.database import REDIS_URL
from faceservice.settings.environment import Variables, export, read, shown


class Celery(Variables):
    """Celery broker and periodic tasks"""

    CELERY_BROKER_URL: str = Field(
        default_factory=lambda: REDIS_URL, json_schema_extra=shown("`REDIS_URL`"),
        description="a separate broker, if wanted")
    CELERY_VISIBILITY_TIMEOUT: int = Field(
        600, exclude=True,
        description="seconds before an unacknowledged task is delivered again; longer than the longest task")
    INDEX_SWEEP_INTERVAL_SECONDS: float = Field(
        10.0, description="how often beat sweeps stuck index jobs (expired leases, lost messages)")
    FACE_PURGE_INTERVAL_SECONDS: int = Field(
        3600, description="how often beat purges faces past a tenant's `face_retention_days`")
    WEBHOOK_SWEEP_INTERVAL_SECONDS: float = Field(15.0, description="how often beat sweeps webhook deliveries")
    TENANT_INDEX_INTERVAL_SECONDS: int = Field(
        600, description="how often Celery beat builds missing per-tenant indexes (`CREATE INDEX CONCURRENTLY`) "
        "and drops those of tenants purged or shrunk to half of `EXACT_SEARCH_MAX_FACES`; "
        "`manage.py maintain_tenant_vector_indexes [--dry-run]` does the same at once")
    AUDIT_ANCHOR_INTERVAL_SECONDS: int = Field(3600, description="how often beat anchors the audit chain heads")


_celery = read(Celery)
export(_celery, globals())

CELERY_RESULT_BACKEND = None  # job state lives in PostgreSQL, the source of truth
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_ALWAYS_EAGER = False

# Surviving a broker restart (docs/OPERATIONS.md, "Faults"). A worker, beat and the web
# processes reconnect for ever, at start-up too (Valkey may come up after them), with
# dead sockets noticed by timeouts, keepalive and health checks rather than hanging.
CELERY_BROKER_CONNECTION_RETRY = True
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_TIMEOUT = 5
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _celery.CELERY_VISIBILITY_TIMEOUT,
    "socket_timeout": 15,  # longer than the transport's 1 s BRPOP
    "socket_connect_timeout": 5,
    "socket_keepalive": True,
    "retry_on_timeout": True,
    "health_check_interval": 10,
}
# A message published while the broker restarts is retried for about 5 s before the
# caller gives up; what is lost even so, the sweepers send again (they own the state).
CELERY_TASK_PUBLISH_RETRY = True
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 5, "interval_start": 0, "interval_step": 0.5,
                                    "interval_max": 2}
# On a lost broker connection a running task carries on (its message, acked late, is
# delivered again and the claim skips the duplicate) instead of being terminated.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False

# Queues: indexing, webhooks and periodic upkeep apart, so a deep indexing queue
# never delays a webhook or the sweeper. A worker started without -Q consumes
# all of them; production can run dedicated workers per queue.
CELERY_TASK_DEFAULT_QUEUE = "celery"
CELERY_TASK_QUEUES = {"celery": {}, "index": {}, "webhooks": {}}
CELERY_TASK_ROUTES = {
    "embeddings.index_asset": {"queue": "index"},
    "tenants.deliver_webhook": {"queue": "webhooks"},
}

CELERY_BEAT_SCHEDULE = {
    "audit-anchor-chain-heads": {
        "task": "audit.anchor_chain_heads", "schedule": _celery.AUDIT_ANCHOR_INTERVAL_SECONDS},
    "audit-purge-expired-events": {"task": "audit.purge_expired_events", "schedule": 24 * 3600},
    "audit-verify-chains": {"task": "audit.verify_chains", "schedule": 24 * 3600},
    "audit-detect-anomalies": {"task": "audit.detect_anomalies", "schedule": ANOMALY_DETECT_INTERVAL_SECONDS},
    "index-jobs-sweep": {"task": "embeddings.sweep_index_jobs", "schedule": _celery.INDEX_SWEEP_INTERVAL_SECONDS},
    "faces-purge-expired": {
        "task": "embeddings.purge_expired_faces", "schedule": _celery.FACE_PURGE_INTERVAL_SECONDS},
    "webhooks-sweep": {
        "task": "tenants.sweep_webhook_deliveries", "schedule": _celery.WEBHOOK_SWEEP_INTERVAL_SECONDS},
    "vector-tenant-indexes": {
        "task": "embeddings.maintain_tenant_indexes", "schedule": _celery.TENANT_INDEX_INTERVAL_SECONDS},
    "keys-resume-rotations": {"task": "tenants.resume_key_rotations", "schedule": 15 * 60},
    # Clustering jobs whose message was lost or whose worker died are sent again.
    "clustering-jobs-sweep": {"task": "embeddings.sweep_clustering_jobs", "schedule": 5 * 60},
}
