"""The real URL conf plus two views that fail, for the 500 tests (test_server_errors.py)."""

from django.urls import path

from faceservice.api.views import TenantAPIView
from faceservice.urls import handler400, handler403, handler404, handler500
from faceservice.urls import urlpatterns as real_urlpatterns

SECRET_DETAIL = "db password is hunter2 at /srv/secret/path"


class BoomApi(TenantAPIView):
    allowed_roles = ("admin", "indexer", "searcher", "comparer", "auditor")

    def get(self, request):
        raise RuntimeError(SECRET_DETAIL)


def plain_boom(request):
    raise RuntimeError(SECRET_DETAIL)


urlpatterns = [
    path("v1/test-boom", BoomApi.as_view()),
    path("test-plain-boom", plain_boom),
    *real_urlpatterns,
]

__all__ = ["handler400", "handler403", "handler404", "handler500", "urlpatterns"]
