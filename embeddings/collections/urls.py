from django.urls import path

from embeddings.collections import apis

urlpatterns = [
    path("collections", apis.CollectionListApi.as_view(), name="collections"),
    path("collections/<str:name>", apis.CollectionApi.as_view(), name="collection"),
]
