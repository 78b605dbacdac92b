"""One HNSW index per face model over the untyped vector column.

The column holds vectors of any dimension; each model gets a partial
expression index `(search_vector::vector(d)) vector_ip_ops WHERE model_id = m`,
so a new model needs a new index, not a schema change or dropped data.
Queries must use the same expression and predicate: `vector_sql` builds both.
Inner product on unit vectors ranks exactly like cosine, and is cheaper.
"""

from __future__ import annotations

import hashlib
import re

from django.conf import settings
from django.db import connection

SAFE_MODEL_ID = re.compile(r"^[A-Za-z0-9_.:+-]{1,100}$")


def _check(model_id: str, dimension: int) -> None:
    # Both end up in SQL text (a partial index predicate must be a literal to
    # be matched by the planner), so they are validated strictly first.
    if not SAFE_MODEL_ID.match(model_id):
        raise ValueError(f"unsafe model id {model_id!r}")
    if not isinstance(dimension, int) or not 2 <= dimension <= 4096:
        raise ValueError(f"bad dimension {dimension!r}")


def index_name(model_id: str) -> str:
    return "face_hnsw_" + hashlib.sha256(model_id.encode()).hexdigest()[:12]


def vector_expression(dimension: int) -> str:
    return f"(search_vector::vector({int(dimension)}))"


def model_predicate(model_id: str) -> str:
    return "model_id = '" + model_id + "'"


def ensure_vector_index(model_id: str, dimension: int) -> bool:
    """Create the model's HNSW index if it is missing. True when it was created."""
    _check(model_id, dimension)
    name = index_name(model_id)
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_indexes WHERE indexname = %s", [name])
        if cursor.fetchone():
            return False
        cursor.execute(
            f"CREATE INDEX IF NOT EXISTS {name} ON embeddings_face USING hnsw "
            f"({vector_expression(dimension)} vector_ip_ops) "
            f"WITH (m = {int(settings.HNSW_M)}, ef_construction = {int(settings.HNSW_EF_CONSTRUCTION)}) "
            f"WHERE {model_predicate(model_id)}"
        )
    return True
