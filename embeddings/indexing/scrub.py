"""Deleted face data leaves the index jobs' per-asset results too.

A job asset's result names the tenant's asset and subject ids and, per face,
its id and box (`GET /v1/index-jobs/<id>/assets`), kept for the job's
retention. When faces are deleted (by face, asset or subject ids, by
retention, or a tenant's purge) the store sends `face_data_deleted`
(embeddings/store/signals.py), and this receiver, in the same transaction:
- takes the deleted faces out of every result that lists them;
- scrubs each job asset of a deleted asset or subject, or of a purged tenant:
  the asset id becomes `deleted:<row id>`, the subject, faces, left-out faces
  and source are cleared. Its state, error code and timings stay (they say
  nothing about a person), so the job's counts still add up.
"""

from __future__ import annotations

from django.db import connection
from django.dispatch import receiver

from embeddings.store.signals import face_data_deleted

_SCRUB = ("asset_id = 'deleted:' || a.id::text, subject_id = NULL, faces = '[]'::jsonb, "
          "left_out = '[]'::jsonb, source = '{}'::jsonb, error_message = ''")
_IN_COLLECTION = ("AND (%(collection)s::uuid IS NULL OR a.job_id IN (SELECT j.id FROM embeddings_indexjob j "
                  "WHERE j.tenant_id = %(tenant)s AND j.collection_id = %(collection)s::uuid))")


@receiver(face_data_deleted, dispatch_uid="indexing-scrub-job-results")
def scrub_job_results(*, tenant_id: str, collection_id, face_ids: list[str], asset_ids: list[str],
                      subject_ids: list[str], purge: bool, **_) -> None:
    params = {"tenant": tenant_id, "collection": str(collection_id) if collection_id else None,
              "faces": face_ids, "assets": asset_ids, "subjects": subject_ids}
    with connection.cursor() as cursor:
        if purge:
            cursor.execute(f"UPDATE embeddings_indexjobasset a SET {_SCRUB} "  # noqa: S608 - constants only
                           "WHERE a.tenant_id = %(tenant)s AND a.asset_id NOT LIKE 'deleted:%%'", params)
            return
        if asset_ids or subject_ids:
            cursor.execute(f"UPDATE embeddings_indexjobasset a SET {_SCRUB} "  # noqa: S608 - constants only
                           "WHERE a.tenant_id = %(tenant)s AND (a.asset_id = ANY(%(assets)s) "
                           f"OR a.subject_id = ANY(%(subjects)s)) {_IN_COLLECTION}", params)
        if face_ids:
            cursor.execute(
                "UPDATE embeddings_indexjobasset a SET faces = COALESCE((SELECT jsonb_agg(e) FROM "  # noqa: S608
                "jsonb_array_elements(a.faces) e WHERE NOT (e->>'face_id' = ANY(%(faces)s))), '[]'::jsonb) "
                "WHERE a.tenant_id = %(tenant)s AND jsonb_typeof(a.faces) = 'array' AND EXISTS (SELECT 1 FROM "
                f"jsonb_array_elements(a.faces) e WHERE e->>'face_id' = ANY(%(faces)s)) {_IN_COLLECTION}", params)
