from django.urls import path, re_path

from audit import apis

urlpatterns = [
    path("audit/events", apis.AuditEventListApi.as_view(), name="audit-events"),
    re_path(r"^audit/events/export\.(?P<file_format>csv|jsonl)$", apis.AuditEventExportApi.as_view(),
            name="audit-events-export"),
]
