"""People discovery over HTTP: clustering jobs and their clusters (Azure Face's Group, photo apps' "people").

Starting a job answers 202 at once; a worker groups the collection's faces
without a subject, and the job's state says when its clusters can be listed
(or a `clustering.finished` webhook does). Subject ids travel in bodies, never in paths.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from embeddings.clustering import grouping, selectors, services
from embeddings.clustering.models import ClusteringJob
from embeddings.store.fields import collection_field
from faceservice.api.fields import InputSerializer
from faceservice.api.pagination import NewestFirstCursorPagination, StrictCursorPagination, paginate
from faceservice.api.views import TenantAPIView

READ_ROLES = ("admin", "indexer", "searcher")
WRITE_ROLES = ("admin", "indexer")
ERRORS = {
    400: OpenApiResponse(description="Invalid request (invalid_request, invalid_face_groups, "
                                     "clusters_of_other_jobs)"),
    404: OpenApiResponse(description="No such job, cluster or collection, or another tenant's (not_found)"),
}
NAMED_ERROR = {409: OpenApiResponse(description="The cluster is named already (cluster_named)")}
THRESHOLD_HELP = (f"Average cosine similarity at or above which two groups of faces are joined (default "
                  f"{grouping.DEFAULT_THRESHOLD}: pairwise precision >= 0.99 on LFW, docs/BENCHMARKS.md). Lower "
                  "finds more of each person's faces and joins more different people.")


class ClusteringJobOutput(serializers.Serializer):
    id = serializers.UUIDField()
    collection = serializers.CharField(source="collection.name")
    state = serializers.ChoiceField(choices=[s.value for s in ClusteringJob.State])
    threshold = serializers.FloatField()
    min_cluster_size = serializers.IntegerField()
    faces_considered = serializers.IntegerField(help_text="Faces without a subject that were grouped")
    faces_clustered = serializers.IntegerField(help_text="Faces placed in a cluster")
    clusters_found = serializers.IntegerField()
    error_code = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class ClusteringJobInput(InputSerializer):
    collection = collection_field()
    threshold = serializers.FloatField(min_value=0.0, max_value=1.0, default=grouping.DEFAULT_THRESHOLD,
                                       help_text=THRESHOLD_HELP)
    min_cluster_size = serializers.IntegerField(min_value=1, max_value=1000, default=2,
                                                help_text="Smaller groups are left unclustered (default 2)")


class ClusteringJobListApi(TenantAPIView):
    allowed_roles = {"GET": READ_ROLES, "POST": WRITE_ROLES}
    pagination_class = NewestFirstCursorPagination

    @extend_schema(request=ClusteringJobInput, responses={202: ClusteringJobOutput, **ERRORS, 422: OpenApiResponse(
        description="Too many faces without a subject for one job (too_many_faces_to_cluster)")},
        examples=[OpenApiExample("Start", value={"collection": "holidays"}, request_only=True)],
        summary="Start a clustering job (202: runs in the background)")
    def post(self, request):
        """Group the collection's faces that have no subject into clusters of the same person. The answer
        is `202` at once with the job; poll `GET /v1/clustering-jobs/{job_id}` (or subscribe to the
        `clustering.finished` webhook), then list its clusters."""
        data = ClusteringJobInput(data=request.data)
        data.is_valid(raise_exception=True)
        job = services.start_clustering_job(tenant_id=self.tenant_id, actor=self.actor(), **data.validated_data)
        body = ClusteringJobOutput(job).data
        return Response(body, status=status.HTTP_202_ACCEPTED,
                        headers={"Location": f"/v1/clustering-jobs/{job.id}"})

    @extend_schema(responses={200: ClusteringJobOutput(many=True), 400: ERRORS[400]},
                   summary="List clustering jobs, newest first (cursor pages)")
    def get(self, request):
        """The tenant's clustering jobs in active collections, newest first. Follow `next`."""
        return paginate(self, selectors.jobs_of(tenant_id=self.tenant_id), ClusteringJobOutput)


class ClusteringJobApi(TenantAPIView):
    allowed_roles = READ_ROLES

    @extend_schema(responses={200: ClusteringJobOutput, 404: ERRORS[404]},
                   summary="A clustering job's state and counts")
    def get(self, request, job_id):
        """A clustering job: `queued`, `running`, `succeeded` or `failed`, with its counts."""
        return Response(ClusteringJobOutput(selectors.job_of(tenant_id=self.tenant_id, job_id=job_id)).data)


class ClusterOutput(serializers.Serializer):
    id = serializers.UUIDField()
    job_id = serializers.UUIDField()
    subject_id = serializers.CharField(allow_null=True, help_text="Set once the cluster was named")
    face_count = serializers.IntegerField()
    representative_face_ids = serializers.ListField(
        child=serializers.UUIDField(), help_text="Up to 3 faces nearest the cluster's mean: the ones to show")


class ClusterFaceOutput(serializers.Serializer):
    face_id = serializers.UUIDField()
    asset_id = serializers.CharField()
    bbox = serializers.ListField(child=serializers.FloatField())


class ClusterDetailOutput(ClusterOutput):
    faces = ClusterFaceOutput(many=True, help_text=f"Up to {selectors.MAX_LISTED_FACES} of its faces, "
                                                   "representatives first")


class LargestClusterFirstPagination(StrictCursorPagination):
    page_size = 50
    max_page_size = 500
    ordering = ("-face_count", "id")


class ClusterListApi(TenantAPIView):
    allowed_roles = READ_ROLES
    pagination_class = LargestClusterFirstPagination

    @extend_schema(responses={200: ClusterOutput(many=True), **ERRORS},
                   summary="List a clustering job's clusters, largest first (cursor pages)")
    def get(self, request, job_id):
        """The job's clusters, largest first, each with its size and representative faces. A cluster whose
        faces were all deleted is not listed. A page holds `limit` clusters (default 50, at most 500)."""
        clusters = selectors.clusters_of(tenant_id=self.tenant_id, job_id=job_id)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(clusters, request, view=self)
        shown = selectors.representatives_of(tenant_id=self.tenant_id, cluster_ids=[c.id for c in page])
        for cluster in page:
            cluster.representative_face_ids = shown[cluster.id]
        return paginator.get_paginated_response(ClusterOutput(page, many=True).data)


class ClusterApi(TenantAPIView):
    allowed_roles = READ_ROLES

    @extend_schema(responses={200: ClusterDetailOutput, 404: ERRORS[404]}, summary="Describe a cluster")
    def get(self, request, cluster_id):
        """A cluster: its size, subject (once named), representatives and its faces (ids, assets, boxes)."""
        return Response(ClusterDetailOutput(selectors.cluster_detail(tenant_id=self.tenant_id,
                                                                     cluster_id=cluster_id)).data)


class ClusterNameInput(InputSerializer):
    subject_id = serializers.CharField(max_length=255)


class ClusterNamedOutput(serializers.Serializer):
    cluster_id = serializers.UUIDField()
    subject_id = serializers.CharField()
    faces_named = serializers.IntegerField(help_text="Faces that got the subject")
    faces_skipped = serializers.IntegerField(help_text="Faces that had a subject already (left as they were)")


class ClusterNameApi(TenantAPIView):
    allowed_roles = WRITE_ROLES

    @extend_schema(request=ClusterNameInput, responses={200: ClusterNamedOutput, **ERRORS, **NAMED_ERROR,
                                                        422: OpenApiResponse(description="The subject would exceed "
                                                                             "SUBJECT_MAX_FACES (subject_face_limit)")},
        examples=[OpenApiExample("Name", value={"subject_id": "alice"}, request_only=True)],
        summary="Name a cluster: its faces get the subject")
    def post(self, request, cluster_id):
        """Give every face of the cluster that has no subject yet the subject (new or existing); searches
        answer with it at once. Refused whole, with `subject_face_limit`, past the per-subject limit."""
        data = ClusterNameInput(data=request.data)
        data.is_valid(raise_exception=True)
        named = services.name_cluster(tenant_id=self.tenant_id, cluster_id=cluster_id, actor=self.actor(),
                                      **data.validated_data)
        return Response(ClusterNamedOutput(named).data)


class ClusterSplitInput(InputSerializer):
    face_groups = serializers.ListField(
        child=serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=1000),
        required=False, max_length=100,
        help_text="Groups of the cluster's face ids, each to become a new cluster (the rest stay)")
    threshold = serializers.FloatField(min_value=0.0, max_value=1.0, required=False,
                                       help_text="Without face_groups: group the faces again at this threshold "
                                                 "(default: the job's + 0.05)")


class ClusterSplitOutput(serializers.Serializer):
    clusters = ClusterOutput(many=True, help_text="The clusters it became, the original first (if it kept faces)")


class ClusterSplitApi(TenantAPIView):
    allowed_roles = WRITE_ROLES

    @extend_schema(request=ClusterSplitInput, responses={200: ClusterSplitOutput, **ERRORS, **NAMED_ERROR},
                   summary="Split a cluster")
    def post(self, request, cluster_id):
        """Split a cluster into the `face_groups` given, or (no groups) by grouping its faces again more
        strictly: the largest group stays, every other one becomes a new cluster."""
        data = ClusterSplitInput(data=request.data)
        data.is_valid(raise_exception=True)
        clusters = services.split_cluster(tenant_id=self.tenant_id, cluster_id=cluster_id, actor=self.actor(),
                                          **data.validated_data)
        return Response(ClusterSplitOutput({"clusters": _described(self.tenant_id, clusters)}).data)


class ClusterMergeInput(InputSerializer):
    cluster_ids = serializers.ListField(child=serializers.UUIDField(), min_length=1, max_length=100)
    into = serializers.UUIDField(help_text="The cluster that keeps every face")


class ClusterMergeApi(TenantAPIView):
    allowed_roles = WRITE_ROLES

    @extend_schema(request=ClusterMergeInput, responses={200: ClusterOutput, **ERRORS, **NAMED_ERROR},
                   summary="Merge clusters of one job into one")
    def post(self, request):
        """Move every face of `cluster_ids` into the cluster `into`; the others are gone. All must be of one
        job and none named."""
        data = ClusterMergeInput(data=request.data)
        data.is_valid(raise_exception=True)
        merged = services.merge_clusters(tenant_id=self.tenant_id, actor=self.actor(), **data.validated_data)
        return Response(ClusterOutput(_described(self.tenant_id, [merged])[0]).data)


def _described(tenant_id, clusters: list) -> list[dict]:
    return [selectors.cluster_detail(tenant_id=tenant_id, cluster_id=cluster.id) for cluster in clusters]
