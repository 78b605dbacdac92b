from django.urls import path

from embeddings.subjects import apis

urlpatterns = [
    path("subjects", apis.SubjectListApi.as_view(), name="subjects"),
    path("subjects/describe", apis.SubjectApi.as_view(), name="subject"),
    path("subjects/rename", apis.SubjectRenameApi.as_view(), name="subject-rename"),
    path("subjects/merge", apis.SubjectMergeApi.as_view(), name="subject-merge"),
    path("faces/associate", apis.AssociateFacesApi.as_view(), name="faces-associate"),
    path("faces/disassociate", apis.DisassociateFacesApi.as_view(), name="faces-disassociate"),
]
