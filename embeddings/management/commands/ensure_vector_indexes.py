"""Create the HNSW index for the configured face model (idempotent; run after migrate)."""

from django.core.management.base import BaseCommand

from embeddings.engine import ModelsUnavailable
from embeddings.face_engine import face_engine
from embeddings.store.vector_index import ensure_vector_index


class Command(BaseCommand):
    help = "Create the vector index of the configured face model if it is missing."

    def handle(self, *args, **options):
        try:
            engine = face_engine()
        except ModelsUnavailable as exc:
            self.stdout.write(self.style.WARNING(f"No face model, no index made: {exc}"))
            return
        created = ensure_vector_index(engine.model_id, engine.dimension)
        state = "created" if created else "present"
        self.stdout.write(f"Vector index for {engine.model_id} ({engine.dimension}-d): {state}.")
