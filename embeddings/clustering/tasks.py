"""Celery task of people discovery. Thin and idempotent: a job already finished or held is left alone."""

from __future__ import annotations

from celery import shared_task

from embeddings.clustering import services


@shared_task(name=services.CLUSTER_TASK, ignore_result=True, acks_late=True)
def cluster_faces(tenant_id: str, job_id: str) -> str | None:
    job = services.run_clustering_job(tenant_id=tenant_id, job_id=job_id)
    return job.state if job is not None else None


@shared_task(name="embeddings.sweep_clustering_jobs", ignore_result=True)
def sweep_clustering_jobs() -> int:
    return services.sweep_clustering_jobs()
