from django.apps import AppConfig


class EmbeddingsConfig(AppConfig):
    name = "embeddings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.conf import settings

        from embeddings.indexing import scrub  # noqa: F401 - connects its receiver to the store's deletions
        from embeddings.store.protection import configure_projection_cache

        # One secret matrix per active tenant (and key version) should stay cached:
        # rebuilding one costs ~0.1 s at 512-d (docs/BENCHMARKS.md, Vector search).
        configure_projection_cache(max_entries=settings.PROJECTION_CACHE_MAX_ENTRIES)
