from django.urls import path

from embeddings.indexing import apis

urlpatterns = [
    path("index-jobs", apis.IndexJobListApi.as_view(), name="index-jobs"),
    path("index-jobs/<uuid:job_id>", apis.IndexJobApi.as_view(), name="index-job"),
    path("index-jobs/<uuid:job_id>/assets", apis.IndexJobAssetsApi.as_view(), name="index-job-assets"),
    path("index-jobs/<uuid:job_id>/cancel", apis.IndexJobCancelApi.as_view(), name="index-job-cancel"),
]
