from django.urls import path

from embeddings import apis
from embeddings.urls_jobs import urlpatterns as job_urlpatterns

urlpatterns = [
    path("search", apis.SearchApi.as_view(), name="search"),
    path("compare", apis.CompareApi.as_view(), name="compare"),
    path("faces/delete", apis.DeleteFacesApi.as_view(), name="faces-delete"),
    path("faces/purge", apis.PurgeFacesApi.as_view(), name="faces-purge"),
    path("receipts/<uuid:receipt_id>", apis.ReceiptApi.as_view(), name="receipt"),
    path("deletions/<uuid:deletion_id>", apis.DeletionApi.as_view(), name="deletion"),
    path("stats", apis.StatisticsApi.as_view(), name="stats"),
    *job_urlpatterns,
]
