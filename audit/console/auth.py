"""Staff sign-in for the auditors' console: password + TOTP, lock-out, audited.

A user may use the console when active, holding the `audit.view_console`
permission (the `auditors` group gives it) and signed in with a confirmed TOTP
device in this session. Failed attempts are counted per user name and client
address in the database; CONSOLE_LOCKOUT_THRESHOLD failures lock that name from
that address, whatever is typed next, for CONSOLE_LOCKOUT_SECONDS, doubled with
each lock-out in a row up to CONSOLE_LOCKOUT_MAX_SECONDS. Per address, so that
someone who knows an auditor's name cannot keep the auditor locked out; guessing
from many addresses is what the anomaly rules on console sign-ins alert on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import authenticate, get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group, Permission
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_otp import match_token
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import StaffLoginThrottle
from audit.services import Actor, record_event

AUDITOR_GROUP = "auditors"
AUDITOR_PERMISSIONS = (("audit", "view_console"), ("audit", "view_auditevent"))
CONSOLE_PERMISSION = "audit.view_console"
GENERIC_FAILURE = "The user name, password or authentication code is not right."
LOCKED_MESSAGE = "Too many failed sign-ins. This account is locked for a while; try again later."


def is_console_user(user) -> bool:
    return bool(user and user.is_active and user.has_perm(CONSOLE_PERMISSION))


def ensure_auditor_group() -> Group:
    """The `auditors` group with read-only console permissions (created on first use)."""
    group, _ = Group.objects.get_or_create(name=AUDITOR_GROUP)
    for app_label, codename in AUDITOR_PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
    return group


@dataclass(frozen=True)
class NewAuditor:
    user: AbstractBaseUser
    device: TOTPDevice


@transaction.atomic
def create_staff_auditor(*, username: str, password: str, email: str = "", actor: Actor) -> NewAuditor:
    """A console-only staff user (not is_staff: the Django admin stays closed to it)."""
    user = get_user_model().objects.create_user(username=username, email=email, password=password,
                                                is_staff=False)
    user.groups.add(ensure_auditor_group())
    device = _new_totp_device(user)
    record_event(tenant_id=None, actor=actor, action="console.auditor_created",
                 target={"user_id": str(user.pk)}, details={"username": username})
    return NewAuditor(user=user, device=device)


@transaction.atomic
def reset_totp(*, user: AbstractBaseUser, actor: Actor) -> TOTPDevice:
    TOTPDevice.objects.filter(user=user).delete()
    device = _new_totp_device(user)
    record_event(tenant_id=None, actor=actor, action="console.totp_reset", target={"user_id": str(user.pk)})
    return device


def _new_totp_device(user: AbstractBaseUser) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="console", confirmed=True)


@dataclass(frozen=True)
class SignIn:
    user: AbstractBaseUser | None = None
    device: TOTPDevice | None = None
    error: str = ""


def sign_in(*, request, username: str, password: str, token: str, client_ip: str | None) -> SignIn:
    """Check password and TOTP code under the lock-out; every outcome is audited."""
    username = username.strip()[:150]
    now = timezone.now()
    with transaction.atomic():
        # The row lock serialises attempts on one name from one address, so
        # parallel guesses cannot overshoot the threshold.
        throttle, _ = StaffLoginThrottle.objects.select_for_update().get_or_create(
            username=username, address=client_ip or "")
        if throttle.locked_until and throttle.locked_until > now:
            _audit(username, None, client_ip, "console.login_refused", "refused", {"reason": "locked"})
            return SignIn(error=LOCKED_MESSAGE)
        user = authenticate(request, username=username, password=password)
        device = match_token(user, token.strip()) if is_console_user(user) and token.strip() else None
        if device is None:
            return _failed(throttle, user, client_ip, now, password_ok=user is not None)
        throttle.failures, throttle.lockouts, throttle.locked_until = 0, 0, None
        throttle.save()
        _audit(username, user, client_ip, "console.login", "success", {"second_factor": "totp"})
    return SignIn(user=user, device=device)


def lockout_seconds(lockouts_before: int) -> int:
    """The n-th lock-out in a row lasts CONSOLE_LOCKOUT_SECONDS * 2^(n-1), capped."""
    longest = settings.CONSOLE_LOCKOUT_MAX_SECONDS
    return min(settings.CONSOLE_LOCKOUT_SECONDS * 2 ** min(lockouts_before, 32), longest)


def _failed(throttle: StaffLoginThrottle, user, client_ip: str | None, now: datetime, *,
            password_ok: bool) -> SignIn:
    if _forgotten(throttle, now):
        throttle.failures, throttle.lockouts = 0, 0
    throttle.failures += 1
    throttle.last_failure_at = now
    locked = throttle.failures >= settings.CONSOLE_LOCKOUT_THRESHOLD
    if locked:
        seconds = lockout_seconds(throttle.lockouts)
        throttle.locked_until = now + timedelta(seconds=seconds)
        throttle.failures = 0
        throttle.lockouts += 1
    throttle.save()
    reason = "second_factor" if password_ok else "credentials"
    _audit(throttle.username, user, client_ip, "console.login_failed", "failure", {"reason": reason})
    if locked:
        _audit(throttle.username, user, client_ip, "console.locked_out", "refused",
               {"seconds": seconds, "lockouts": throttle.lockouts})
        return SignIn(error=LOCKED_MESSAGE)
    return SignIn(error=GENERIC_FAILURE)


def _forgotten(throttle: StaffLoginThrottle, now: datetime) -> bool:
    # Failures long past (a typo last month) do not count towards today's lock-out or its length.
    last = throttle.last_failure_at
    return last is not None and now - last > timedelta(seconds=settings.CONSOLE_LOCKOUT_MAX_SECONDS)


def forget_stale_throttles(*, now: datetime) -> int:
    """Delete counters with no failure for CONSOLE_LOCKOUT_MAX_SECONDS and no running lock-out.

    Guesses from many addresses each leave a row; this keeps the table small.
    """
    stale = now - timedelta(seconds=settings.CONSOLE_LOCKOUT_MAX_SECONDS)
    old = Q(last_failure_at__lt=stale) | Q(last_failure_at__isnull=True)  # the latter: sign-ins, no failure
    deleted, _ = StaffLoginThrottle.objects.filter(old).exclude(locked_until__gt=now).delete()
    return deleted


def _audit(username: str, user, client_ip: str | None, action: str, outcome: str, details: dict) -> None:
    # A name that matches no user is not written down: it may be a password typed
    # into the wrong field.
    known = user or get_user_model().objects.filter(username=username).first()
    actor = Actor(type="staff", id=str(known.pk) if known else "",
                  name=known.get_username() if known else "(unknown user)", client_ip=client_ip)
    record_event(tenant_id=None, actor=actor, action=action, outcome=outcome, details=details)


def audit_staff(user, *, action: str, client_ip: str | None, details: dict | None = None,
                outcome: str = "success") -> None:
    record_event(tenant_id=None, actor=Actor.staff(user, client_ip=client_ip), action=action,
                 outcome=outcome, details=details or {})


def session_expired(signed_in_at: float | None, now: float) -> bool:
    """The absolute limit; the idle limit is the session cookie's own age."""
    return signed_in_at is None or now - signed_in_at > settings.CONSOLE_MAX_SESSION_SECONDS
