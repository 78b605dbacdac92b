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

        start_tracing()


def start_tracing() -> None:
    """Traces, when the OTEL_* variables ask for them (faceservice/tracing.py): every process that does work."""
    from django.db.backends.signals import connection_created

    from faceservice import tracing

    if tracing.configure("faceservice"):
        connection_created.connect(_trace_statements, dispatch_uid="faceservice-trace-statements")


def _trace_statements(sender, connection, **kwargs) -> None:
    from faceservice import tracing

    tracing.trace_database_connection(connection)
