from django.urls import path

from embeddings.detect import apis

urlpatterns = [
    path("detect", apis.DetectApi.as_view(), name="detect"),
]
