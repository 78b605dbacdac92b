from django.urls import path

from embeddings.store import apis

urlpatterns = [
    path("faces", apis.FaceListApi.as_view(), name="faces"),
    path("faces/delete", apis.DeleteFacesApi.as_view(), name="faces-delete"),
    path("faces/purge", apis.PurgeFacesApi.as_view(), name="faces-purge"),
    path("receipts/<uuid:receipt_id>", apis.ReceiptApi.as_view(), name="receipt"),
    path("deletions/<uuid:deletion_id>", apis.DeletionApi.as_view(), name="deletion"),
    path("stats", apis.StatisticsApi.as_view(), name="stats"),
]
