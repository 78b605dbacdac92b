"""Observability: where each process serves its Prometheus metrics (docs/OPERATIONS.md, "Metrics").

Traces need no setting of ours: the standard OTEL_* variables switch them on
(faceservice/tracing.py; docs/OPERATIONS.md, "Traces").
"""

from pydantic import Field

from faceservice.settings.environment import Variables, export, read


class Observability(Variables):
    """Metrics"""

    METRICS_ADDRESS: str = Field(
        "0.0.0.0", description="address the metrics ports listen on (`127.0.0.1`: this host only); never the "  # noqa: S104
        "API's listener, so a load balancer in front of the API does not expose them")
    # deploy/gunicorn.conf.py reads METRICS_WEB_PORT itself (it runs before Django): same default.
    METRICS_WEB_PORT: int = Field(
        9100, description="port of the web process's metrics (served by gunicorn's arbiter for all its workers); "
        "`0` turns it off")
    METRICS_WORKER_PORT: int = Field(
        9101, description="port of a Celery worker's metrics (served by its main process for all its child "
        "processes); `0` turns it off")
    METRICS_BEAT_PORT: int = Field(9102, description="port of Celery beat's metrics; `0` turns it off")


export(read(Observability), globals())
