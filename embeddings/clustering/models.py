"""People discovery: clustering jobs, the clusters they found, and which faces each holds.

A job groups a collection's faces that have no subject (Azure Face's Group).
Its clusters hold face ids only, never vectors. Membership rows reference the
faces with a database-level ON DELETE CASCADE (migration 0009): faces are
deleted with raw SQL in places (re-indexing, retention, large deletions), so
only the database can promise that a deleted face leaves no row here. A
cluster's size and representatives are read from its membership rows, so they
too forget a deleted face.
"""

from __future__ import annotations

import uuid

from django.db import models
from django.utils import timezone

from embeddings.store.models import Collection, Face
from tenants.models import Tenant


class ClusteringJob(models.Model):
    """One run of people discovery over a collection's faces without a subject."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued: waiting for a worker"
        RUNNING = "running", "Running: a worker holds the lease"
        SUCCEEDED = "succeeded", "Succeeded: its clusters can be listed"
        FAILED = "failed", "Failed: see error_code"

    TERMINAL_STATES = frozenset({"succeeded", "failed"})

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+")
    # Deleting a collection deletes its clustering jobs, their clusters and memberships.
    collection = models.ForeignKey(Collection, on_delete=models.CASCADE, related_name="+", db_index=False)
    state = models.CharField(max_length=12, choices=State.choices, default=State.QUEUED)
    threshold = models.FloatField(help_text="Average cosine at or above which two clusters are joined")
    min_cluster_size = models.PositiveIntegerField(default=2)
    # The fencing token of the worker's claim, as for index assets (faceservice/durable.py).
    attempts = models.PositiveSmallIntegerField(default=0)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    faces_considered = models.PositiveIntegerField(default=0)
    faces_clustered = models.PositiveIntegerField(default=0)
    clusters_found = models.PositiveIntegerField(default=0)
    error_code = models.CharField(max_length=64, blank=True, default="")
    requested_by = models.JSONField(default=dict, help_text="The actor: type, id, name")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "embeddings_clusteringjob"
        indexes = [models.Index(fields=["tenant", "collection", "created_at"], name="clusteringjob_collection")]

    @property
    def is_finished(self) -> bool:
        return self.state in self.TERMINAL_STATES


class Cluster(models.Model):
    """A group of faces that look like one person; named once a subject is given to its faces."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    job = models.ForeignKey(ClusteringJob, on_delete=models.CASCADE, related_name="clusters")
    # Set when the cluster is named: its faces were given this subject.
    subject_id = models.CharField(max_length=255, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "embeddings_cluster"


class ClusterFace(models.Model):
    """One face in one cluster. A face is in at most one cluster of a job."""

    id = models.BigAutoField(primary_key=True)
    tenant = models.ForeignKey(Tenant, on_delete=models.CASCADE, related_name="+", db_index=False)
    job = models.ForeignKey(ClusteringJob, on_delete=models.CASCADE, related_name="+", db_index=False)
    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="members", db_index=False)
    # No Django constraint: the migration adds the foreign key with ON DELETE CASCADE
    # (Django would emit a plain one and cascade only deletions made through the ORM).
    face = models.ForeignKey(Face, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    # 1, 2, 3 for the faces nearest the cluster's mean direction (shown first); null for the others.
    rank = models.PositiveSmallIntegerField(null=True, blank=True)

    class Meta:
        db_table = "embeddings_clusterface"
        constraints = [models.UniqueConstraint(fields=["tenant", "job", "face"], name="clusterface_one_per_job")]
        indexes = [models.Index(fields=["tenant", "cluster", "rank"], name="clusterface_cluster")]
