"""Routes for index jobs and face listings (see embeddings/job_apis.py)."""

urlpatterns: list = []
