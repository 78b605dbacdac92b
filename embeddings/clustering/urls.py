from django.urls import path

from embeddings.clustering import apis

urlpatterns = [
    path("clustering-jobs", apis.ClusteringJobListApi.as_view(), name="clustering-jobs"),
    path("clustering-jobs/<uuid:job_id>", apis.ClusteringJobApi.as_view(), name="clustering-job"),
    path("clustering-jobs/<uuid:job_id>/clusters", apis.ClusterListApi.as_view(), name="clustering-job-clusters"),
    path("clusters/merge", apis.ClusterMergeApi.as_view(), name="clusters-merge"),
    path("clusters/<uuid:cluster_id>", apis.ClusterApi.as_view(), name="cluster"),
    path("clusters/<uuid:cluster_id>/name", apis.ClusterNameApi.as_view(), name="cluster-name"),
    path("clusters/<uuid:cluster_id>/split", apis.ClusterSplitApi.as_view(), name="cluster-split"),
]
