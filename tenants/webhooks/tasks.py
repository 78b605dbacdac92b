"""Celery tasks for webhook delivery (found by faceservice/celery.py like every tasks module).

Thin and idempotent: each claims its row in PostgreSQL first, so a duplicate
or late message does nothing.
"""

from __future__ import annotations

from celery import shared_task

from tenants.webhooks import delivery
from tenants.webhooks.services import DELIVER_TASK


@shared_task(name=DELIVER_TASK, ignore_result=True)
def deliver_webhook(tenant_id: str, delivery_id: str) -> str:
    return delivery.deliver(tenant_id=tenant_id, delivery_id=delivery_id)


@shared_task(name="tenants.sweep_webhook_deliveries", ignore_result=True)
def sweep_webhook_deliveries() -> int:
    return delivery.sweep_deliveries()
