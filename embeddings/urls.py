from django.urls import include, path

urlpatterns = [
    path("", include("embeddings.search.urls")),
    path("", include("embeddings.detect.urls")),
    path("", include("embeddings.store.urls")),
    path("", include("embeddings.indexing.urls")),
    path("", include("embeddings.collections.urls")),
    path("", include("embeddings.subjects.urls")),
    path("", include("embeddings.clustering.urls")),
]
