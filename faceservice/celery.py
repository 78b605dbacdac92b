"""The Celery app. Job state lives in PostgreSQL; Celery only carries ids."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceservice.settings")

app = Celery("faceservice")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
