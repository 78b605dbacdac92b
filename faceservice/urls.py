from django.contrib import admin
from django.urls import include, path, re_path
from django_otp.admin import OTPAdminSite
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from faceservice import health
from faceservice.api import errors

# Staff sign in to the admin with a password AND a TOTP code.
admin.site.__class__ = OTPAdminSite
admin.site.site_header = "Face search service: operator admin"

urlpatterns = [
    path("healthz", health.HealthzApi.as_view(), name="healthz"),
    path("readyz", health.ReadyzApi.as_view(), name="readyz"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    # Both pages load their scripts from our /static/ (SPECTACULAR_SETTINGS: SIDECAR), never a CDN.
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="schema", template_name="api_docs/redoc.html"),
         name="api-redoc"),
    path("v1/", include("tenants.urls")),
    path("v1/", include("embeddings.urls")),
    path("v1/", include("audit.urls")),
    path("staff/", admin.site.urls),
    path("console/", include("audit.console.urls")),  # the auditors' console (audit app)
    # Last: every other path is a JSON 404, never an HTML page.
    re_path(r"^.*$", errors.json_not_found),
]

handler400 = errors.json_bad_request
handler403 = errors.json_permission_denied
handler404 = errors.json_not_found
handler500 = errors.json_server_error
