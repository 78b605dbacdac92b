from django.urls import path, re_path

from audit.console import views

app_name = "audit-console"

urlpatterns = [
    path("", views.events_view, name="events"),
    path("login", views.login_view, name="login"),
    path("logout", views.logout_view, name="logout"),
    path("console.css", views.stylesheet, name="stylesheet"),
    path("events/<int:event_id>", views.event_detail_view, name="event"),
    path("receipts", views.receipts_view, name="receipts"),
    path("keys", views.keys_view, name="keys"),
    path("chains", views.chains_view, name="chains"),
    re_path(r"^chains/(?P<chain>[0-9a-f-]{36}|platform)/verify$", views.verify_chain_view, name="verify"),
    re_path(r"^export/events\.(?P<fmt>csv|jsonl)$", views.export_events_view, name="export-events"),
    re_path(r"^export/receipts\.(?P<fmt>csv|jsonl)$", views.export_receipts_view, name="export-receipts"),
    re_path(r"^export/keys\.(?P<fmt>csv|jsonl)$", views.export_keys_view, name="export-keys"),
]
