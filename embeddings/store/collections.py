"""Collections at the store's level: find one by name, bind it to a model, lock it for a write.

Every face, asset and index job belongs to one collection. A call that names
none uses the tenant's `default` collection, made on first use; any other
collection must have been created (embeddings/collections/). Call inside the
tenant's scope (faceservice/tenancy.py).
"""

from __future__ import annotations

import re
import uuid
from uuid import UUID

from django.db import connection

from embeddings.store.models import COLLECTION_NAME_PATTERN, Collection
from faceservice.errors import Conflict, InvalidRequest, NotFound

DEFAULT_COLLECTION = "default"
_NAME = re.compile(COLLECTION_NAME_PATTERN)


class CollectionNotFound(NotFound):
    default_message = "No such collection."


class CollectionDeleted(Conflict):
    """The collection was deleted while the request (or an index job's asset) was under way."""

    code = "collection_deleted"
    default_message = "The collection was deleted."


class CollectionModelMismatch(Conflict):
    """A collection holds the faces of one model; faces of another go to a new collection."""

    code = "collection_model_mismatch"
    default_message = ("The collection holds faces of another face model; index into a new collection to move "
                       "to this model.")


class InvalidCollectionName(InvalidRequest):
    code = "invalid_collection_name"
    default_message = "A collection name is 1-100 letters, digits, '_', '.' or '-', starting with a letter or digit."


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME.match(name):
        raise InvalidCollectionName()
    return name


# The default collection is made by whichever call needs it first; two at once
# meet on the unique index of active names and both read the one row.
_ENSURE_DEFAULT_SQL = """
INSERT INTO embeddings_collection (id, tenant_id, name, model_id, status, created_at)
VALUES (%s, %s, %s, NULL, 'active', now())
ON CONFLICT (tenant_id, name) WHERE status = 'active' DO NOTHING
"""


def collection_named(tenant_id: UUID | str, name: str | None = None) -> Collection:
    """The tenant's active collection of that name (None: the default one, made if missing)."""
    name = DEFAULT_COLLECTION if name is None else check_name(name)
    found = Collection.objects.filter(tenant_id=tenant_id, name=name, status=Collection.Status.ACTIVE).first()
    if found is not None:
        return found
    if name != DEFAULT_COLLECTION:
        raise CollectionNotFound()
    with connection.cursor() as cursor:
        cursor.execute(_ENSURE_DEFAULT_SQL, [uuid.uuid4(), str(tenant_id), DEFAULT_COLLECTION])
    return Collection.objects.get(tenant_id=tenant_id, name=name, status=Collection.Status.ACTIVE)


def collection_id_of(tenant_id: UUID | str, collection_id: UUID | str | None) -> UUID:
    """The given collection id, or the default collection's (made if missing)."""
    if collection_id is not None:
        return collection_id if isinstance(collection_id, UUID) else UUID(str(collection_id))
    return collection_named(tenant_id).id


# Lock the collection against deletion until the write commits, and read what
# the write needs: the collection's retention and model, and whether it is
# still active. A deleter takes the row FOR UPDATE, so it waits for this write
# and then deletes its faces too; a write that comes after finds it deleting.
_LOCK_FOR_WRITE_SQL = """
SELECT status, model_id, face_retention_days FROM embeddings_collection
WHERE tenant_id = %s AND id = %s FOR SHARE
"""
_BIND_MODEL_SQL = "UPDATE embeddings_collection SET model_id = %s WHERE id = %s AND model_id IS NULL"


def lock_for_write(tenant_id: UUID | str, collection_id: UUID, model_id: str) -> int | None:
    """Lock the collection for a write of faces of `model_id`; its retention days (None: the tenant's).

    Binds an unbound collection to the model. Raises CollectionDeleted or
    CollectionModelMismatch.
    """
    with connection.cursor() as cursor:
        cursor.execute(_LOCK_FOR_WRITE_SQL, [str(tenant_id), str(collection_id)])
        found = cursor.fetchone()
        if found is None or found[0] != Collection.Status.ACTIVE:
            raise CollectionDeleted()
        _, bound_model, retention_days = found
        if bound_model is None:
            cursor.execute(_BIND_MODEL_SQL, [model_id, str(collection_id)])
        elif bound_model != model_id:
            raise CollectionModelMismatch()
    return retention_days


def check_model(collection: Collection, model_id: str) -> None:
    """Refuse a request whose model is not the collection's (searches; job submissions)."""
    if collection.model_id is not None and collection.model_id != model_id:
        raise CollectionModelMismatch()
