"""Writes of people discovery: start and run a clustering job, then name, split and merge its clusters.

A job runs in a worker (tasks.py): it claims the job under a lease (a
fencing token, as index assets do: faceservice/durable.py), reads the
protected templates of the collection's faces without a subject, groups
them (grouping.py) and writes the clusters in one transaction, with its audit
event and the `clustering.finished` webhook. Naming a cluster gives its faces
a subject under the subject rules (the per-subject face limit, the gallery
generation moved so searches answer with it at once).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from uuid import UUID

import numpy as np
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.services import Actor, record_event
from embeddings.clustering import grouping, selectors
from embeddings.clustering.models import Cluster, ClusterFace, ClusteringJob
from embeddings.store.collections import collection_named
from embeddings.store.generations import next_generation
from embeddings.store.models import Face
from embeddings.store.services import check_subject_room
from faceservice.celery import app
from faceservice.durable import bound_transaction
from faceservice.errors import Conflict, InvalidRequest, Unprocessable
from faceservice.tenancy import platform_scope, tenant_context
from tenants.webhooks import services as webhooks

logger = logging.getLogger(__name__)

CLUSTER_TASK = "embeddings.cluster_faces"
# A worker holds a job this long; after it the job may be claimed again (the worker died).
LEASE_SECONDS = 30 * 60
# A job still queued this long after it was started lost its message: the sweeper sends it again.
RESEND_AFTER_SECONDS = 15 * 60
# The most faces one job groups: ~2 minutes of work at 100k on two cores (bench/bench_clustering.py).
MAX_FACES = 200_000
# The sub-cluster threshold of a split that names no groups: stricter than the job's by this much.
SPLIT_STEP = 0.05
CLUSTERING_FINISHED = webhooks.CLUSTERING_FINISHED  # the webhook event of a finished job
WORKER_ACTOR = Actor.system("clustering-worker")


class TooManyFacesToCluster(Unprocessable):
    """One job groups at most MAX_FACES faces."""

    code = "too_many_faces_to_cluster"
    default_message = f"The collection has more than {MAX_FACES} faces without a subject to group in one job."


class ClusterNamed(Conflict):
    """A named cluster's faces belong to its subject now: change them with the subjects API."""

    code = "cluster_named"
    default_message = "The cluster is named already; change its faces through the subjects API."


class ClustersOfOtherJobs(InvalidRequest):
    code = "clusters_of_other_jobs"
    default_message = "Only clusters of one clustering job can be merged."


class InvalidFaceGroups(InvalidRequest):
    code = "invalid_face_groups"
    default_message = "Each face of the groups must be in the cluster, and in one group only."


# --- Jobs ----------------------------------------------------------------------------------

def start_clustering_job(*, tenant_id: UUID | str, collection: str | None = None,
                         threshold: float = grouping.DEFAULT_THRESHOLD, min_cluster_size: int = 2,
                         actor: Actor) -> ClusteringJob:
    """Queue a job that groups the collection's faces without a subject; a worker runs it after the commit."""
    with tenant_context(tenant_id):
        target = collection_named(tenant_id, collection)
        unlabelled = Face.objects.filter(tenant_id=tenant_id, collection_id=target.id, subject_id=None)
        if unlabelled[:MAX_FACES + 1].count() > MAX_FACES:
            raise TooManyFacesToCluster(details={"limit": MAX_FACES})
        job = ClusteringJob.objects.create(tenant_id=tenant_id, collection=target, threshold=threshold,
                                           min_cluster_size=min_cluster_size,
                                           requested_by={"type": actor.type, "id": actor.id, "name": actor.name})
        record_event(tenant_id=tenant_id, actor=actor, action="clustering_job.started",
                     target={"collection_id": str(target.id), "clustering_job_id": str(job.id)},
                     details={"threshold": threshold, "min_cluster_size": min_cluster_size})
        transaction.on_commit(lambda: send_job(tenant_id, job.id), robust=True)
    return job


def send_job(tenant_id: UUID | str, job_id: UUID) -> None:
    app.send_task(CLUSTER_TASK, args=[str(tenant_id), str(job_id)])


def sweep_clustering_jobs(*, now=None) -> int:
    """Send again the jobs whose message was lost (queued too long) or whose worker died (lease expired)."""
    now = now or timezone.now()
    lost = Q(state=ClusteringJob.State.QUEUED, created_at__lt=now - timedelta(seconds=RESEND_AFTER_SECONDS)) | Q(
        state=ClusteringJob.State.RUNNING, lease_expires_at__lt=now)
    with platform_scope():
        jobs = list(ClusteringJob.objects.filter(lost).values_list("tenant_id", "id"))
    for tenant_id, job_id in jobs:
        send_job(tenant_id, job_id)  # a duplicate message claims nothing: the task is idempotent
    return len(jobs)


def run_clustering_job(*, tenant_id: UUID | str, job_id: UUID | str) -> ClusteringJob | None:
    """Claim the job, group its faces and store the clusters. Idempotent: a job not claimable is left alone.

    None when it was not claimed (finished, or held by a living worker).
    """
    token = _claim(tenant_id, job_id)
    if token is None:
        return None
    with tenant_context(tenant_id):
        job = ClusteringJob.objects.get(tenant_id=tenant_id, id=job_id)
    try:
        templates = selectors.unlabelled_templates(tenant_id=tenant_id, collection_id=job.collection_id)
        grouped = grouping.group_faces(templates.vectors, threshold=job.threshold,
                                       min_size=job.min_cluster_size) if templates.face_ids else None
        return _store(job, token, templates, grouped)
    except Exception:
        logger.exception("clustering job %s failed", job_id)
        return _fail(job, token, "internal_error")


def _claim(tenant_id: UUID | str, job_id: UUID | str) -> int | None:
    """Queued, or running under an expired lease: take it with a new token (its attempts)."""
    now = timezone.now()
    with bound_transaction(tenant_id):
        claimable = Q(state=ClusteringJob.State.QUEUED) | Q(state=ClusteringJob.State.RUNNING,
                                                            lease_expires_at__lt=now)
        claimed = (ClusteringJob.objects.filter(claimable, tenant_id=tenant_id, id=job_id)
                   .update(state=ClusteringJob.State.RUNNING, attempts=F("attempts") + 1, started_at=now,
                           lease_expires_at=now + timedelta(seconds=LEASE_SECONDS)))
        if not claimed:
            return None
        return ClusteringJob.objects.filter(id=job_id).values_list("attempts", flat=True).get()


def _held(job: ClusteringJob, token: int) -> bool:
    """Lock the job if this claim still holds it (a worker overtaken after its lease must not write)."""
    return ClusteringJob.objects.select_for_update().filter(
        id=job.id, state=ClusteringJob.State.RUNNING, attempts=token).exists()


def _store(job: ClusteringJob, token: int, templates: selectors.Templates,
           grouped: grouping.Grouping | None) -> ClusteringJob | None:
    with bound_transaction(job.tenant_id):
        if not _held(job, token):
            return None
        Cluster.objects.filter(tenant_id=job.tenant_id, job=job).delete()  # a re-run starts clean
        groups = grouped.groups if grouped is not None else []
        for members in groups:
            _write_cluster(job, [templates.face_ids[i] for i in members], templates.vectors[members])
        clustered = ClusterFace.objects.filter(tenant_id=job.tenant_id, job=job).count()
        found = Cluster.objects.filter(tenant_id=job.tenant_id, job=job).count()
        return _finish(job, ClusteringJob.State.SUCCEEDED, faces_considered=len(templates.face_ids),
                       faces_clustered=clustered, clusters_found=found)


def _fail(job: ClusteringJob, token: int, error_code: str) -> ClusteringJob | None:
    with bound_transaction(job.tenant_id):
        if not _held(job, token):
            return None
        return _finish(job, ClusteringJob.State.FAILED, error_code=error_code)


def _finish(job: ClusteringJob, state: str, **counts) -> ClusteringJob:
    now = timezone.now()
    for name, value in {"state": state, "finished_at": now, "lease_expires_at": None, **counts}.items():
        setattr(job, name, value)
    job.save()
    summary = job_summary(job)
    record_event(tenant_id=job.tenant_id, actor=WORKER_ACTOR, action="clustering_job.finished",
                 target={"collection_id": str(job.collection_id), "clustering_job_id": str(job.id)},
                 outcome="success" if state == ClusteringJob.State.SUCCEEDED else "failure", details=summary)
    webhooks.emit_event(tenant_id=job.tenant_id, event_type=CLUSTERING_FINISHED, payload=summary)
    return job


def job_summary(job: ClusteringJob) -> dict:
    """What the audit event and the webhook say of a finished job: ids, counts and times only."""
    return {"clustering_job_id": str(job.id), "collection_id": str(job.collection_id), "state": job.state,
            "faces_considered": job.faces_considered, "faces_clustered": job.faces_clustered,
            "clusters_found": job.clusters_found, "error_code": job.error_code,
            "finished_at": job.finished_at.isoformat() if job.finished_at else None}


# Only faces still there and still without a subject join a cluster: a face
# deleted or named while the job ran is left out, not an integrity error.
_INSERT_MEMBERS_SQL = """
INSERT INTO embeddings_clusterface (tenant_id, job_id, cluster_id, face_id, rank)
SELECT %(tenant)s, %(job)s, %(cluster)s, m.face_id, NULLIF(m.rank, 0)
FROM unnest(%(faces)s::uuid[], %(ranks)s::int[]) AS m(face_id, rank)
JOIN embeddings_face f ON f.id = m.face_id AND f.tenant_id = %(tenant)s AND f.subject_id IS NULL
"""


def _write_cluster(job: ClusteringJob, face_ids: list[UUID], vectors: np.ndarray) -> Cluster | None:
    cluster = Cluster.objects.create(tenant_id=job.tenant_id, job=job)
    ranks = _ranks(vectors)
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_MEMBERS_SQL, {"tenant": str(job.tenant_id), "job": str(job.id),
                                             "cluster": str(cluster.id), "faces": face_ids, "ranks": ranks})
        if cursor.rowcount == 0:
            cluster.delete()
            return None
    return cluster


def _ranks(vectors: np.ndarray) -> list[int]:
    """1, 2, 3 for the representatives, 0 (stored as null) for the others."""
    ranks = [0] * len(vectors)
    for rank, position in enumerate(grouping.representatives(vectors, count=selectors.REPRESENTATIVES), 1):
        ranks[int(position)] = rank
    return ranks


def _rerank(cluster: Cluster) -> int:
    """Choose the cluster's representatives again from the faces it now holds; its size."""
    templates = selectors.templates_of(tenant_id=cluster.tenant_id, collection_id=cluster.job.collection_id,
                                       face_ids=selectors.member_ids(tenant_id=cluster.tenant_id,
                                                                     cluster_id=cluster.id))
    members = ClusterFace.objects.filter(tenant_id=cluster.tenant_id, cluster=cluster)
    members.update(rank=None)
    for face_id, rank in zip(templates.face_ids, _ranks(templates.vectors), strict=True):
        if rank:
            members.filter(face_id=face_id).update(rank=rank)
    return len(templates.face_ids)


# --- Clusters ------------------------------------------------------------------------------

@dataclass(frozen=True)
class NamedCluster:
    """A named cluster: its faces that got the subject, and those that had one already (left as they were)."""

    cluster_id: UUID
    subject_id: str
    faces_named: int
    faces_skipped: int


def name_cluster(*, tenant_id: UUID | str, cluster_id: UUID | str, subject_id: str,
                 actor: Actor) -> NamedCluster:
    """Give the cluster's faces the subject (Rekognition's AssociateFaces for a whole cluster)."""
    with tenant_context(tenant_id):
        cluster = _unnamed(tenant_id, cluster_id)
        collection_id = cluster.job.collection_id
        members = selectors.member_ids(tenant_id=tenant_id, cluster_id=cluster.id)
        naming = list(Face.objects.filter(tenant_id=tenant_id, collection_id=collection_id, id__in=members,
                                          subject_id=None).values_list("id", flat=True))
        check_subject_room(tenant_id, collection_id, subject_id, adding=len(naming))
        Face.objects.filter(tenant_id=tenant_id, id__in=naming).update(subject_id=subject_id)
        if naming:
            next_generation(tenant_id, removes=False)
        Cluster.objects.filter(pk=cluster.pk).update(subject_id=subject_id)
        result = NamedCluster(cluster_id=cluster.id, subject_id=subject_id, faces_named=len(naming),
                              faces_skipped=len(members) - len(naming))
        record_event(tenant_id=tenant_id, actor=actor, action="cluster.named",
                     target={"collection_id": str(collection_id), "cluster_id": str(cluster.id),
                             "subject_id": subject_id},
                     details={"faces_named": result.faces_named, "faces_skipped": result.faces_skipped})
    return result


def split_cluster(*, tenant_id: UUID | str, cluster_id: UUID | str, actor: Actor,
                  face_groups: Sequence[Sequence[UUID]] | None = None,
                  threshold: float | None = None) -> list[Cluster]:
    """Split a cluster: into the given face groups, or by grouping its faces again more strictly.

    With `face_groups`, each group becomes a new cluster and the faces named in
    none stay. Without, the faces are grouped at `threshold` (default: the
    job's plus SPLIT_STEP): the largest group stays, each other one (a single
    face too) becomes a new cluster. Returns the clusters, the original first.
    """
    with tenant_context(tenant_id):
        cluster = _unnamed(tenant_id, cluster_id)
        members = selectors.member_ids(tenant_id=tenant_id, cluster_id=cluster.id)
        if face_groups:
            groups = _checked_groups(face_groups, members)
        else:
            groups = _stricter_groups(cluster, threshold or min(cluster.job.threshold + SPLIT_STEP, 1.0))
        clusters = [cluster] + [_move_into_new_cluster(cluster, group) for group in groups]
        kept = [c for c in clusters if _rerank(c) > 0]
        if cluster not in kept:
            cluster.delete()
        record_event(tenant_id=tenant_id, actor=actor, action="cluster.split",
                     target={"collection_id": str(cluster.job.collection_id), "cluster_id": str(cluster.id)},
                     details={"new_cluster_ids": [str(c.id) for c in kept if c != cluster],
                              "by": "face_groups" if face_groups else "threshold"})
    return kept


def _checked_groups(face_groups: Sequence[Sequence[UUID]], members: list[UUID]) -> list[list[UUID]]:
    groups = [list(dict.fromkeys(group)) for group in face_groups if group]
    named = [face_id for group in groups for face_id in group]
    if len(named) != len(set(named)) or not set(named) <= set(members):
        raise InvalidFaceGroups()
    return groups


def _stricter_groups(cluster: Cluster, threshold: float) -> list[list[UUID]]:
    """Every group but the largest (which stays in the cluster), grouped at the stricter threshold."""
    templates = selectors.templates_of(tenant_id=cluster.tenant_id, collection_id=cluster.job.collection_id,
                                       face_ids=selectors.member_ids(tenant_id=cluster.tenant_id,
                                                                     cluster_id=cluster.id))
    grouped = grouping.group_faces(templates.vectors, threshold=threshold, min_size=1)
    return [[templates.face_ids[i] for i in members] for members in grouped.groups[1:]]


def _move_into_new_cluster(cluster: Cluster, face_ids: list[UUID]) -> Cluster:
    new = Cluster.objects.create(tenant_id=cluster.tenant_id, job_id=cluster.job_id)
    new.job = cluster.job
    ClusterFace.objects.filter(tenant_id=cluster.tenant_id, cluster=cluster, face_id__in=face_ids).update(
        cluster=new)
    return new


def merge_clusters(*, tenant_id: UUID | str, cluster_ids: Sequence[UUID], into: UUID, actor: Actor) -> Cluster:
    """Move every face of `cluster_ids` into the cluster `into` (all of one job, none named)."""
    with tenant_context(tenant_id):
        target = _unnamed(tenant_id, into)
        sources = [_unnamed(tenant_id, cluster_id) for cluster_id in sorted(set(cluster_ids) - {target.id})]
        if not sources:
            raise InvalidRequest("Name at least one cluster other than the one merged into.")
        if any(source.job_id != target.job_id for source in sources):
            raise ClustersOfOtherJobs()
        ClusterFace.objects.filter(tenant_id=tenant_id, cluster__in=sources).update(cluster=target)
        Cluster.objects.filter(tenant_id=tenant_id, id__in=[source.id for source in sources]).delete()
        size = _rerank(target)
        record_event(tenant_id=tenant_id, actor=actor, action="cluster.merged",
                     target={"collection_id": str(target.job.collection_id), "cluster_id": str(target.id)},
                     details={"merged_cluster_ids": [str(source.id) for source in sources], "face_count": size})
    return target


def _unnamed(tenant_id: UUID | str, cluster_id: UUID | str) -> Cluster:
    """The cluster, locked for this change; ClusterNamed once it has a subject."""
    cluster = selectors.cluster_of(tenant_id=tenant_id, cluster_id=cluster_id, for_update=True)
    if cluster.subject_id is not None:
        raise ClusterNamed()
    return cluster
