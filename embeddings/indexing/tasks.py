"""Celery tasks of index jobs. Thin and idempotent: the state is in PostgreSQL.

Worker settings that matter (faceservice/settings.py, docs/JOBS.md): acks
late + reject on worker lost + prefetch 1, so a message is removed only after
its task ran and a crashed worker's message is delivered again; the sweeper
covers what the broker loses. Each worker process loads the face models once,
at start (faceservice/celery.py).
"""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task
from celery.signals import worker_process_shutdown
from django.db import InterfaceError, OperationalError

from embeddings.indexing import dispatch, pipeline, sweep


# A claim that meets a database outage is retried from the broker within seconds
# (1, 2, 4, 8, 8 ... s, for about 2 minutes), rather than acknowledged and left
# to the sweeper's re-send; duplicates are harmless, the claim decides.
@shared_task(name=dispatch.INDEX_TASK, ignore_result=True, autoretry_for=(OperationalError, InterfaceError),
             retry_backoff=1, retry_backoff_max=8, retry_jitter=False, max_retries=20)
def index_asset(tenant_id: str, job_asset_ids: list[str]) -> str:
    return pipeline.run_batch(tenant_id=tenant_id, job_asset_ids=job_asset_ids)


@worker_process_shutdown.connect
def commit_what_the_store_thread_holds(**kwargs) -> None:
    # A worker process that stops (warm shutdown, max tasks per child) first
    # commits the assets its store thread still holds; a killed one leaves
    # them to the sweeper (their leases expire).
    pipeline.drain_pipeline()


@shared_task(name="embeddings.dispatch_index_assets", ignore_result=True)
def dispatch_index_assets() -> int:
    return dispatch.dispatch_all()


@shared_task(name="embeddings.sweep_index_jobs", ignore_result=True)
def sweep_index_jobs() -> dict:
    return asdict(sweep.sweep())
