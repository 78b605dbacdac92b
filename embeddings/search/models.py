"""Search galleries' shared state: one generation counter per tenant and model."""

from __future__ import annotations

from django.db import models

from tenants.models import Tenant


class GalleryState(models.Model):
    """A counter of the writes to a tenant's faces, for the in-memory search galleries.

    Every transaction that inserts, changes or deletes faces takes the next
    generation first thing after its own row locks and holds this row's lock
    until it commits. So a generation G seen committed means every row written
    at or below G is visible: a reader that holds the tenant's templates up to
    G needs only the rows above it. Deletions also set `removed_generation`,
    which tells readers to load the tenant again (embeddings/search/gallery.py).
    """

    tenant = models.OneToOneField(Tenant, on_delete=models.CASCADE, primary_key=True, related_name="+")
    generation = models.BigIntegerField(default=0)
    removed_generation = models.BigIntegerField(default=0)

    class Meta:
        db_table = "embeddings_gallerystate"


# --- Index jobs -------------------------------------------------------------------
# PostgreSQL is the source of truth for jobs: Celery messages carry only ids,
# and a lost message or a dead worker is recovered from these rows by the
# sweeper (see embeddings/indexing/sweep.py and docs/JOBS.md).
