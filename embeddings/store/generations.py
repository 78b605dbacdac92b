"""Generations of a tenant's faces: how in-memory search galleries keep up with writes.

Every transaction that writes a tenant's faces takes the tenant's next
generation here and stamps its new rows with it (embeddings/search/gallery.py
explains how searches use the counter). It lives with the face store because
every writer of faces calls it; search only reads it.
"""

from __future__ import annotations

from uuid import UUID

from django.db import connection

# Called by every writer of faces, inside its transaction, after its other
# row locks (the same order everywhere, so writers cannot deadlock on it).
_NEXT_GENERATION_SQL = """
INSERT INTO embeddings_gallerystate AS g (tenant_id, generation, removed_generation)
VALUES (%(tenant)s, 1, CASE WHEN %(removes)s THEN 1 ELSE 0 END)
ON CONFLICT (tenant_id) DO UPDATE
SET generation = g.generation + 1,
    removed_generation = CASE WHEN %(removes)s THEN g.generation + 1 ELSE g.removed_generation END
RETURNING generation
"""


def next_generation(tenant_id: UUID | str, *, removes: bool) -> int:
    """Take the tenant's next gallery generation (writers only; inside their transaction).

    `removes`: the transaction deletes faces or changes their templates, so
    in-memory galleries must be loaded again rather than topped up.
    """
    with connection.cursor() as cursor:
        cursor.execute(_NEXT_GENERATION_SQL, {"tenant": str(tenant_id), "removes": removes})
        return cursor.fetchone()[0]
