"""Reads of people discovery: jobs, clusters with their representatives, and the templates to group."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from uuid import UUID

import numpy as np
from django.db import connection
from django.db.models import Count, QuerySet

from embeddings.clustering.models import Cluster, ClusterFace, ClusteringJob
from embeddings.store.models import Collection
from embeddings.store.protection import projection_matrix, reproject
from faceservice.errors import NotFound
from faceservice.tenancy import tenant_context
from tenants import data_keys

# What a cluster's listing shows of it; the describe call lists up to MAX_LISTED_FACES.
REPRESENTATIVES = 3
MAX_LISTED_FACES = 1000


class ClusteringJobNotFound(NotFound):
    default_message = "No such clustering job."


class ClusterNotFound(NotFound):
    default_message = "No such cluster."


@dataclass(frozen=True)
class Templates:
    """Faces and their protected templates, all under one key version (so their cosines compare)."""

    face_ids: list[UUID]
    vectors: np.ndarray  # float32, one row per face


def job_of(*, tenant_id: UUID | str, job_id: UUID | str) -> ClusteringJob:
    """The tenant's job in an active collection (another tenant's, or a deleted collection's: not found)."""
    with tenant_context(tenant_id):
        job = (ClusteringJob.objects.filter(tenant_id=tenant_id, id=job_id,
                                            collection__status=Collection.Status.ACTIVE)
               .select_related("collection").first())
    if job is None:
        raise ClusteringJobNotFound()
    return job


def jobs_of(*, tenant_id: UUID | str) -> QuerySet:
    """The tenant's jobs in active collections (the caller orders and pages them)."""
    return ClusteringJob.objects.filter(tenant_id=tenant_id, collection__status=Collection.Status.ACTIVE
                                        ).select_related("collection")


def cluster_of(*, tenant_id: UUID | str, cluster_id: UUID | str, for_update: bool = False) -> Cluster:
    """The tenant's cluster (locked until the transaction ends when `for_update`)."""
    clusters = Cluster.objects.filter(tenant_id=tenant_id, id=cluster_id,
                                      job__collection__status=Collection.Status.ACTIVE)
    if for_update:
        clusters = clusters.select_for_update(of=("self",))
    with tenant_context(tenant_id):
        cluster = clusters.select_related("job").first()
    if cluster is None:
        raise ClusterNotFound()
    return cluster


def clusters_of(*, tenant_id: UUID | str, job_id: UUID | str) -> QuerySet:
    """The job's clusters that still hold faces, with their sizes (`face_count`)."""
    job = job_of(tenant_id=tenant_id, job_id=job_id)
    return (Cluster.objects.filter(tenant_id=tenant_id, job=job).annotate(face_count=Count("members"))
            .filter(face_count__gt=0))


def representatives_of(*, tenant_id: UUID | str, cluster_ids: Sequence[UUID]) -> dict[UUID, list[UUID]]:
    """Each cluster's representative faces, best first."""
    found: dict[UUID, list[UUID]] = {cluster_id: [] for cluster_id in cluster_ids}
    with tenant_context(tenant_id):
        rows = (ClusterFace.objects.filter(tenant_id=tenant_id, cluster_id__in=list(cluster_ids),
                                           rank__isnull=False)
                .order_by("cluster_id", "rank").values_list("cluster_id", "face_id"))
        for cluster_id, face_id in rows:
            found[cluster_id].append(face_id)
    return found


def cluster_detail(*, tenant_id: UUID | str, cluster_id: UUID | str) -> dict:
    """One cluster: its job, subject, size, representatives and (up to MAX_LISTED_FACES) faces."""
    with tenant_context(tenant_id):
        cluster = cluster_of(tenant_id=tenant_id, cluster_id=cluster_id)
        members = ClusterFace.objects.filter(tenant_id=tenant_id, cluster=cluster)
        faces = list(members.order_by("rank", "face__created_at", "face_id")
                     .values("face_id", "face__asset_id", "face__bbox")[:MAX_LISTED_FACES])
        count = members.count()
    representatives = representatives_of(tenant_id=tenant_id, cluster_ids=[cluster.id])[cluster.id]
    return {"id": cluster.id, "job_id": cluster.job_id, "subject_id": cluster.subject_id, "face_count": count,
            "representative_face_ids": representatives,
            "faces": [{"face_id": f["face_id"], "asset_id": f["face__asset_id"], "bbox": f["face__bbox"]}
                      for f in faces]}


def member_ids(*, tenant_id: UUID | str, cluster_id: UUID) -> list[UUID]:
    with tenant_context(tenant_id):
        return list(ClusterFace.objects.filter(tenant_id=tenant_id, cluster_id=cluster_id)
                    .order_by("face_id").values_list("face_id", flat=True))


# A face past its expiry is not grouped, whenever the retention purge runs.
_TEMPLATES_SQL = (
    "SELECT uuid_send(id), key_version, vector_send(search_vector) FROM embeddings_face "
    "WHERE tenant_id = %s AND collection_id = %s AND (expires_at IS NULL OR expires_at > statement_timestamp()) ")


def unlabelled_templates(*, tenant_id: UUID | str, collection_id: UUID) -> Templates:
    """The templates of the collection's faces that have no subject (the ones discovery groups)."""
    return _templates(tenant_id, _TEMPLATES_SQL + "AND subject_id IS NULL ORDER BY id",
                      [str(tenant_id), str(collection_id)], collection_id)


def templates_of(*, tenant_id: UUID | str, collection_id: UUID, face_ids: Sequence[UUID]) -> Templates:
    """The templates of these faces of the collection (the ones still there), by face id."""
    return _templates(tenant_id, _TEMPLATES_SQL + "AND id = ANY(%s) ORDER BY id",
                      [str(tenant_id), str(collection_id), list(face_ids)], collection_id)


def _templates(tenant_id, sql: str, params: list, collection_id: UUID) -> Templates:
    with tenant_context(tenant_id), connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        model_id = Collection.objects.filter(tenant_id=tenant_id, id=collection_id).values_list(
            "model_id", flat=True).first()
    if not rows:
        return Templates(face_ids=[], vectors=np.zeros((0, 0), dtype=np.float32))
    face_ids = [uuid.UUID(bytes=bytes(row[0])) for row in rows]
    versions = np.array([row[1] for row in rows])
    dimension = int.from_bytes(bytes(rows[0][2])[:2], "big")
    record = np.dtype([("head", ">i2", 2), ("values", ">f4", dimension)])  # pgvector's binary form
    vectors = np.frombuffer(b"".join(bytes(row[2]) for row in rows), dtype=record)["values"].astype(np.float32)
    return Templates(face_ids=face_ids, vectors=_one_key_version(tenant_id, model_id, vectors, versions))


def _one_key_version(tenant_id, model_id: str | None, vectors: np.ndarray, versions: np.ndarray) -> np.ndarray:
    """Templates made under older key versions re-keyed to the newest one (R_new·R_oldᵀ·y).

    Templates of two versions are under two different rotations and do not
    compare; during a key rotation a collection holds both. Outside one (the
    usual case) this returns the vectors untouched and needs no key.
    """
    newest = int(versions.max())
    if (versions == newest).all():
        return vectors
    dimension = vectors.shape[1]

    def matrix(version: int) -> np.ndarray:
        return projection_matrix(dek=data_keys.data_key(tenant_id=tenant_id, version=version),
                                 key_version=version, dimension=dimension, model_id=model_id)

    out = vectors.copy()
    for version in {int(v) for v in versions} - {newest}:
        rows = versions == version
        out[rows] = reproject(matrix(version), matrix(newest), vectors[rows])
    return out
