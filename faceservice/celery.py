"""The Celery app. Job state lives in PostgreSQL; Celery only carries ids.

Also each Celery process's metrics and traces: a worker's processes (prefork) write
their metrics to one directory that the main process serves on METRICS_WORKER_PORT;
beat serves its own on METRICS_BEAT_PORT (faceservice/metrics.py says why). The
directory is set here, before anything imports prometheus_client.
"""

import atexit
import os
import sys
import time
from pathlib import Path

from celery import Celery
from celery.signals import (
    after_task_publish,
    beat_init,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceservice.settings")
METRICS_DIR_PREFIX = "faceservice-metrics-"


def celery_role(argv: list[str]) -> str | None:
    """`worker` or `beat` when this process is `celery … worker|beat`; None in web processes, shells, tests."""
    if not argv or Path(argv[0]).name != "celery":
        return None
    return next((arg for arg in argv[1:] if arg in ("worker", "beat")), None)


def prepare_metrics_dir(role: str) -> Path:
    """Set (if unset) and empty this process group's PROMETHEUS_MULTIPROC_DIR.

    Files left by an earlier run would be summed with the new ones, so the directory is
    emptied; an operator may name it, else it is made in memory (/dev/shm), named after
    the role and the main process, and directories of main processes no longer alive
    (killed before their exit could remove them) are removed.
    """
    configured = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if configured:
        path = Path(configured)
    else:
        base = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path("/tmp")  # noqa: S108 - memory first
        _remove_stale_dirs(base, role)
        path = base / f"{METRICS_DIR_PREFIX}{role}-{os.getpid()}"
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(path)
        atexit.register(_remove_dir, path, os.getpid())
    path.mkdir(parents=True, exist_ok=True)
    for old in path.glob("*.db"):
        old.unlink()
    return path


def _remove_stale_dirs(base: Path, role: str) -> None:
    for old in base.glob(f"{METRICS_DIR_PREFIX}{role}-*"):
        pid = old.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            _remove_dir(old, None)


def _remove_dir(path: Path, owner: int | None) -> None:
    if owner is not None and owner != os.getpid():
        return  # a forked child's exit: the main process still needs the directory
    for old in path.glob("*.db"):
        old.unlink(missing_ok=True)
    if path.is_dir() and not any(path.iterdir()):
        path.rmdir()


ROLE = celery_role(sys.argv)
if ROLE is not None:
    prepare_metrics_dir(ROLE)

app = Celery("faceservice")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each capability package keeps its tasks in its own tasks.py.
app.autodiscover_tasks([
    "audit",
    "tenants",
    "tenants.webhooks",
    "embeddings.indexing",
    "embeddings.store",
    "embeddings.clustering",
])


@worker_process_init.connect
def load_models_once_per_worker_process(**kwargs):
    # Each prefork child loads the models once, before its first task.
    # Imported here: this module is imported before Django is set up.
    from embeddings.face_engine import warm_up_face_engine

    warm_up_face_engine()


@worker_init.connect
def serve_worker_metrics(**kwargs) -> None:
    # The main process serves every child's metrics; it runs no task itself.
    from django.conf import settings

    from faceservice import metrics

    metrics.serve(settings.METRICS_WORKER_PORT, settings.METRICS_ADDRESS)


@beat_init.connect
def serve_beat_metrics(**kwargs) -> None:
    from django.conf import settings

    from faceservice import metrics

    metrics.serve(settings.METRICS_BEAT_PORT, settings.METRICS_ADDRESS)


@worker_process_shutdown.connect
def forget_this_process_metrics(**kwargs) -> None:
    from faceservice import metrics

    metrics.process_exited(os.getpid())


# Per task: its state, its time and its trace. Keyed by task id, in this process only.
_running: dict[str, tuple[float, object]] = {}


@task_prerun.connect
def task_started(task_id=None, task=None, **kwargs) -> None:
    from faceservice import tracing

    _running[task_id] = (time.perf_counter(), tracing.start_task_span(task.name))


@task_postrun.connect
def task_ended(task_id=None, task=None, state=None, **kwargs) -> None:
    from faceservice import metrics, tracing

    started, span = _running.pop(task_id, (None, None))
    seconds = time.perf_counter() - started if started is not None else None
    metrics.observe_task(task=task.name, state=(state or "unknown").lower(), seconds=seconds)
    tracing.end_task_span(span, state=state or "")


@after_task_publish.connect
def task_published(sender=None, **kwargs) -> None:
    from faceservice import metrics

    metrics.count_task_published(str(sender))
