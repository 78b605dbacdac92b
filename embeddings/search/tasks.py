"""Celery tasks of search: upkeep of the per-tenant vector indexes."""

from __future__ import annotations

import logging

from celery import shared_task

from embeddings.search import vector_index

logger = logging.getLogger(__name__)


@shared_task(name="embeddings.maintain_tenant_indexes", ignore_result=True)
def maintain_tenant_indexes() -> dict:
    # Can run for minutes (a 500k-face build); a second run while it does returns at once.
    work = vector_index.maintain_tenant_indexes()
    if work.skipped:
        logger.info("per-tenant vector indexes: %s", work.skipped)
    return {"built": work.built, "dropped": work.dropped, "skipped": work.skipped}
