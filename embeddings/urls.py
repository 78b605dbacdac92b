from embeddings.urls_jobs import urlpatterns as job_urlpatterns

urlpatterns = [
    *job_urlpatterns,
]
