"""The Celery app. Job state lives in PostgreSQL; Celery only carries ids."""

import os

from celery import Celery
from celery.signals import worker_process_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceservice.settings")

app = Celery("faceservice")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Each capability package keeps its tasks in its own tasks.py.
app.autodiscover_tasks([
    "audit",
    "tenants",
    "tenants.webhooks",
    "embeddings.indexing",
    "embeddings.store",
])


@worker_process_init.connect
def load_models_once_per_worker_process(**kwargs):
    # Each prefork child loads the models once, before its first task.
    # Imported here: this module is imported before Django is set up.
    from embeddings.face_engine import warm_up_face_engine

    warm_up_face_engine()
