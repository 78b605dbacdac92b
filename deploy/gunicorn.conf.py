"""Gunicorn settings for the web process (environment variables override the defaults)."""

import os

bind = f"0.0.0.0:{os.environ.get('PORT', '8000')}"
# Each process loads the face models once: prefer few processes with threads
# (onnxruntime releases the GIL while it runs).
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
# gunicorn's gthread worker, answering what gunicorn itself refuses (limits below, bytes
# that are not HTTP) in the API's JSON error shape instead of an HTML page.
worker_class = "faceservice.gunicorn_worker.JsonErrorWorker"
timeout = int(os.environ.get("WEB_TIMEOUT", "60"))
graceful_timeout = 30
keepalive = 5
# Recycle processes now and then, so slow leaks cannot grow without bound.
max_requests = int(os.environ.get("WEB_MAX_REQUESTS", "2000"))
max_requests_jitter = max_requests // 10
# Heartbeat files in memory: the root file system is read-only, and nothing
# about requests should ever land on disk anyway.
worker_tmp_dir = "/dev/shm"  # noqa: S108 - a tmpfs by design
# The service writes its own JSON access line (request id, no query strings or
# keys); gunicorn's access log would repeat it with the raw request line.
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info").lower()
# Only the proxy in front may set X-Forwarded-*: name its addresses (comma-separated).
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# Refuse absurd request lines and headers before Django sees them (414 request_line_too_long,
# 431 request_headers_too_large: docs/API.md, Limits). The longest request line a client
# needs is a GET with a cursor and filters, far below this.
limit_request_line = 8190
limit_request_fields = 100
limit_request_field_size = 8190

# Metrics (faceservice/metrics.py): each worker process writes its values to files in
# PROMETHEUS_MULTIPROC_DIR; the arbiter, which serves no request, sums them on its own
# port (METRICS_WEB_PORT, default as in faceservice/settings/observability.py), never
# the API's.
METRICS_PORT = int(os.environ.get("METRICS_WEB_PORT") or "9100")
METRICS_ADDRESS = os.environ.get("METRICS_ADDRESS") or "0.0.0.0"  # noqa: S104 - the metrics port only


def on_starting(server) -> None:
    # Before any process imports prometheus_client: the mode is fixed at its import.
    from faceservice.celery import prepare_metrics_dir

    prepare_metrics_dir("web")


def when_ready(server) -> None:
    from faceservice import metrics

    metrics.serve(METRICS_PORT, METRICS_ADDRESS)


def child_exit(server, worker) -> None:
    # A worker that ended (recycled, killed): its gallery sizes no longer count.
    from faceservice import metrics

    metrics.process_exited(worker.pid)
