from django.urls import path

from embeddings.search import apis

urlpatterns = [
    path("search", apis.SearchApi.as_view(), name="search"),
    path("compare", apis.CompareApi.as_view(), name="compare"),
    path("search/subjects", apis.PersonSearchApi.as_view(), name="search-subjects"),
    path("verify", apis.VerifyApi.as_view(), name="verify"),
]
