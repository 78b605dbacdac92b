"""Routes for index jobs and face listings (see embeddings/job_apis.py)."""

from django.urls import path

from embeddings import job_apis

urlpatterns: list = [
    path("index-jobs", job_apis.IndexJobListApi.as_view(), name="index-jobs"),
    path("index-jobs/<uuid:job_id>", job_apis.IndexJobApi.as_view(), name="index-job"),
    path("index-jobs/<uuid:job_id>/assets", job_apis.IndexJobAssetsApi.as_view(), name="index-job-assets"),
    path("index-jobs/<uuid:job_id>/cancel", job_apis.IndexJobCancelApi.as_view(), name="index-job-cancel"),
    path("faces", job_apis.FaceListApi.as_view(), name="faces"),
]
