"""Create a console auditor (password + TOTP) and print the TOTP set-up.

    manage.py create_staff_auditor alice [--email a@example.com] [--password-stdin] [--qr]
    manage.py create_staff_auditor alice --reset-totp [--qr]

Prints the otpauth:// provisioning URI (and with --qr a QR code in the terminal)
to scan into an authenticator app. Without --password-stdin a random password
is generated and printed once.
"""

from __future__ import annotations

import io
import secrets
import sys

import segno
from django.contrib.auth import get_user_model
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from audit.console import auth as console_auth
from audit.services import Actor


class Command(BaseCommand):
    help = "Create a staff auditor for the audit console and print its TOTP provisioning URI."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        parser.add_argument("--reset-totp", action="store_true",
                            help="existing user: replace the TOTP device (the old codes stop working)")
        parser.add_argument("--qr", action="store_true", help="also draw the QR code in the terminal")

    def handle(self, *args, username, email, password_stdin, reset_totp: bool, qr: bool, **options):
        actor = Actor.operator("create_staff_auditor")
        if reset_totp:
            user = get_user_model().objects.filter(username=username).first()
            if user is None:
                raise CommandError(f"no user named {username!r}")
            device = console_auth.reset_totp(user=user, actor=actor)
            self._print_totp(device, qr)
            return
        if get_user_model().objects.filter(username=username).exists():
            raise CommandError(f"a user named {username!r} exists (use --reset-totp for a new device)")
        password, generated = self._password(password_stdin)
        try:
            validate_password(password, get_user_model()(username=username, email=email))
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        created = console_auth.create_staff_auditor(username=username, password=password, email=email, actor=actor)
        self.stdout.write(self.style.SUCCESS(f"created auditor {username!r} (console only, read-only)"))
        if generated:
            self.stdout.write(f"password (shown once): {password}")
        self._print_totp(created.device, qr)

    def _password(self, from_stdin: bool) -> tuple[str, bool]:
        if from_stdin:
            return sys.stdin.readline().rstrip("\n"), False
        return secrets.token_urlsafe(18), True

    def _print_totp(self, device, qr: bool) -> None:
        self.stdout.write("TOTP provisioning URI (scan or paste into an authenticator app):")
        self.stdout.write(device.config_url)
        if qr:
            drawing = io.StringIO()
            segno.make(device.config_url, error="m").terminal(out=drawing, compact=True)
            self.stdout.write(drawing.getvalue(), ending="")
