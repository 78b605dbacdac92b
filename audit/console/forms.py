"""Forms of the auditors' console: sign-in and event filters."""

from __future__ import annotations

from django import forms

from audit.models import PLATFORM_CHAIN
from audit.selectors import TARGET_ID, EventFilters
from tenants.models import Tenant

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"]


class SignInForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"autocomplete": "username",
                                                                             "autofocus": True}))
    password = forms.CharField(max_length=512, strip=False,
                               widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}))
    otp_token = forms.RegexField(
        label="Authentication code", regex=r"^\s*\d{6,8}\s*$",
        error_messages={"invalid": "Enter the 6-digit code from your authenticator app."},
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                      "pattern": r"\d{6,8}", "maxlength": "8"}))


class EventFilterForm(forms.Form):
    chain = forms.ChoiceField(label="Tenant", required=False)
    since = forms.DateTimeField(label="From (UTC)", required=False, input_formats=DATETIME_FORMATS,
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    until = forms.DateTimeField(label="To (UTC)", required=False, input_formats=DATETIME_FORMATS,
                                widget=forms.DateTimeInput(attrs={"type": "datetime-local"}))
    action = forms.CharField(required=False, max_length=64,
                             widget=forms.TextInput(attrs={"placeholder": "e.g. search or key.*"}))
    actor_id = forms.CharField(label="Actor id", required=False, max_length=64)
    target_id = forms.RegexField(label="Target id", regex=TARGET_ID, required=False)
    outcome = forms.ChoiceField(required=False, choices=[
        ("", "any"), ("success", "success"), ("failure", "failure"), ("refused", "refused")])
    q = forms.CharField(label="Search", required=False, max_length=200,
                        widget=forms.SearchInput(attrs={"placeholder": "action, actor, request id, receipt…"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        tenants = [(str(t.id), t.name) for t in Tenant.objects.order_by("name").only("id", "name")]
        self.fields["chain"].choices = [("", "All tenants"), (PLATFORM_CHAIN, "Platform (staff, operator)"),
                                        *tenants]

    def filters(self, **preset) -> EventFilters:
        data = self.cleaned_data if self.is_valid() else {}
        values = {
            "chain": data.get("chain", ""), "since": data.get("since"), "until": data.get("until"),
            "action": data.get("action", ""), "actor_id": data.get("actor_id", ""),
            "target_id": data.get("target_id", ""), "outcome": data.get("outcome", ""),
            "text": data.get("q", ""),
        }
        values.update({k: v for k, v in preset.items() if not values.get(k)})
        return EventFilters(**values)
