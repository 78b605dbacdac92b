from django.apps import AppConfig


class FaceserviceConfig(AppConfig):
    name = "faceservice"

    def ready(self) -> None:
        # Create the Celery app in every Django process (web, worker, shell,
        # tests) before any task is sent, so that the tasks' @shared_task binds
        # to it rather than to a default app. Here rather than in the package's
        # __init__ (Celery's usual place), which also runs for the face engine
        # when it imports faceservice.errors. `celery -A faceservice` finds the
        # app in faceservice/celery.py by itself.
        from faceservice import celery  # noqa: F401
