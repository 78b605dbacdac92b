"""The auditors' console: read-only views of the audit log across tenants.

Every page view and export is itself an audit event on the platform chain,
written in the same transaction as the page's reads. Reads across tenants go
through platform_scope(), the deliberate way past row-level security.
Nothing here adds, changes or deletes audit data: pages answer GET only (POST
is refused with 405), except sign-in, sign-out and "verify now".
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from urllib.parse import urlencode

from django.contrib.auth import login as auth_login
from django.contrib.auth import logout as auth_logout
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_otp import login as otp_login

from audit import exports, selectors, verification
from audit.console import auth
from audit.console.forms import EventFilterForm, SignInForm
from audit.models import PLATFORM_CHAIN, AuditEvent
from faceservice.tenancy import platform_scope
from tenants.models import Tenant

PAGE_SIZE = 50
CHAIN_ID = re.compile(r"^[0-9a-f-]{36}$")  # a tenant chain, to page after
SIGNED_IN_AT = "console_signed_in_at"
CSS_PATH = Path(__file__).resolve().parent.parent / "static" / "audit" / "console.css"
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'none'; style-src 'self'; img-src 'self' data:; "
                                "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"),
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex, nofollow",
}


def client_ip(request: HttpRequest) -> str | None:
    return request.META.get("REMOTE_ADDR")


def _secure(response: HttpResponse) -> HttpResponse:
    for name, value in SECURITY_HEADERS.items():
        response[name] = value
    return response


def _signed_in(request: HttpRequest) -> bool:
    user = request.user
    if not (user.is_authenticated and user.is_verified() and auth.is_console_user(user)):
        return False
    if auth.session_expired(request.session.get(SIGNED_IN_AT), time.time()):
        auth_logout(request)
        return False
    return True


def console_page(name: str) -> Callable:
    """Sign-in required (password + TOTP), one transaction in platform scope, audited."""
    def decorate(view: Callable) -> Callable:
        @wraps(view)
        @never_cache
        def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
            if not _signed_in(request):
                return redirect(f"{reverse('audit-console:login')}?{urlencode({'next': request.get_full_path()})}")
            with transaction.atomic(), platform_scope():
                response = view(request, *args, **kwargs)
                action = getattr(response, "audit_action", "console.viewed")
                details = {"view": name, "query": {k: v for k, v in request.GET.items() if v},
                           **{k: str(v) for k, v in kwargs.items()}}
                auth.audit_staff(request.user, action=action, client_ip=client_ip(request), details=details)
            return _secure(response)
        return wrapper
    return decorate


# --- Sign-in ------------------------------------------------------------------------------

@never_cache
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = request.POST.get("next") or request.GET.get("next") or ""
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, request.is_secure()):
        next_url = ""
    form = SignInForm(request.POST or None)
    error = ""
    if request.method == "POST" and form.is_valid():
        result = auth.sign_in(request=request, username=form.cleaned_data["username"],
                              password=form.cleaned_data["password"],
                              token=form.cleaned_data["otp_token"], client_ip=client_ip(request))
        if result.user:
            auth_login(request, result.user)
            otp_login(request, result.device)
            request.session[SIGNED_IN_AT] = time.time()
            return redirect(next_url or reverse("audit-console:events"))
        error = result.error
    elif request.method == "POST":
        error = auth.GENERIC_FAILURE
    status = 200 if request.method == "GET" else 400
    return _secure(render(request, "audit/console/login.html",
                          {"form": form, "error": error, "next": next_url}, status=status))


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        with transaction.atomic():
            auth.audit_staff(request.user, action="console.logout", client_ip=client_ip(request))
    auth_logout(request)
    return redirect("audit-console:login")


@require_GET
def stylesheet(request: HttpRequest) -> HttpResponse:
    # Served by the app itself so the console needs no static-file server and
    # its CSP can stay at style-src 'self'.
    response = HttpResponse(CSS_PATH.read_bytes(), content_type="text/css; charset=utf-8")
    response["Cache-Control"] = "public, max-age=3600"
    return response


# --- Pages --------------------------------------------------------------------------------

def _event_page(request: HttpRequest, *, template_title: str, section: str, **preset) -> HttpResponse:
    form = EventFilterForm(request.GET or None)
    filters = form.filters(**preset)
    events = selectors.all_events(filters=filters)
    before = request.GET.get("before", "")
    if before.isdigit():
        events = events.filter(id__lt=int(before))
    page = list(events[: PAGE_SIZE + 1])
    more, page = len(page) > PAGE_SIZE, page[:PAGE_SIZE]
    query = {k: v for k, v in request.GET.items() if v and k != "before"}
    context = {
        "title": template_title, "section": section, "form": form,
        "events": _with_tenant_names(page), "filters_active": bool(query),
        "older_url": f"?{urlencode({**query, 'before': page[-1].id})}" if more and page else "",
        "export_query": urlencode(query), "export_view": f"audit-console:export-{section}",
        "is_first_page": not before,
    }
    return render(request, "audit/console/events.html", context)


def _with_tenant_names(events: list[AuditEvent]) -> list[AuditEvent]:
    ids = {e.tenant_id for e in events if e.tenant_id}
    names = {t.id: t.name for t in Tenant.objects.filter(id__in=ids).only("id", "name")}
    for event in events:
        event.tenant_name = names.get(event.tenant_id, "")
    return events


@require_GET
@console_page("events")
def events_view(request: HttpRequest) -> HttpResponse:
    return _event_page(request, template_title="Audit events", section="events")


@require_GET
@console_page("receipts")
def receipts_view(request: HttpRequest) -> HttpResponse:
    return _event_page(request, template_title="Deletion receipts", section="receipts", has_receipt=True)


@require_GET
@console_page("keys")
def keys_view(request: HttpRequest) -> HttpResponse:
    return _event_page(request, template_title="Key history", section="keys", action="key.*")


@require_GET
@console_page("event")
def event_detail_view(request: HttpRequest, event_id: int) -> HttpResponse:
    event = AuditEvent.objects.filter(id=event_id).first()
    if event is None:
        raise Http404("No such event.")
    context = {"title": f"Event {event.id}", "section": "events", "event": _with_tenant_names([event])[0],
               "previous": AuditEvent.objects.filter(chain=event.chain, seq=event.seq - 1).only("id").first(),
               "following": AuditEvent.objects.filter(chain=event.chain, seq=event.seq + 1).only("id").first()}
    return render(request, "audit/console/event_detail.html", context)


@require_GET
@console_page("chains")
def chains_view(request: HttpRequest) -> HttpResponse:
    after = request.GET.get("after", "")
    rows, next_after = selectors.chain_overview(after=after if CHAIN_ID.match(after) else "", limit=PAGE_SIZE)
    tenant_ids = [row["head"].chain for row in rows if row["head"].chain != PLATFORM_CHAIN]
    names = {str(t.id): t.name for t in Tenant.objects.filter(id__in=tenant_ids).only("id", "name")}
    for row in rows:
        chain = row["head"].chain
        row["name"] = "Platform (staff, operator)" if chain == PLATFORM_CHAIN else names.get(chain, chain)
    return render(request, "audit/console/chains.html",
                  {"title": "Chain verification", "section": "chains", "rows": rows,
                   "next_url": f"?{urlencode({'after': next_after})}" if next_after else "",
                   "is_first_page": not after})


@require_POST
@console_page("verify")
def verify_chain_view(request: HttpRequest, chain: str) -> HttpResponse:
    """Re-verify one chain now. Writes only the cached result and its own audit event."""
    report = verification.verify_chain(chain)
    verification.record_verification(report)
    response = HttpResponseRedirect(reverse("audit-console:chains") + f"#chain-{chain}")
    response.audit_action = "console.chain_verified"
    return response


def _export(request: HttpRequest, *, fmt: str, **preset) -> HttpResponse:
    if fmt not in exports.FORMATS:
        raise Http404("Unknown format.")
    filters = EventFilterForm(request.GET or None).filters(**preset)
    response = exports.platform_export(filters=filters, fmt=fmt)
    response.audit_action = "console.exported"
    return response


@require_GET
@console_page("export-events")
def export_events_view(request: HttpRequest, fmt: str) -> HttpResponse:
    return _export(request, fmt=fmt)


@require_GET
@console_page("export-receipts")
def export_receipts_view(request: HttpRequest, fmt: str) -> HttpResponse:
    return _export(request, fmt=fmt, has_receipt=True)


@require_GET
@console_page("export-keys")
def export_keys_view(request: HttpRequest, fmt: str) -> HttpResponse:
    return _export(request, fmt=fmt, action="key.*")
