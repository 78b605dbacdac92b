from django.core.management.base import BaseCommand

from audit.hardening import grants_script


class Command(BaseCommand):
    help = ("Print the GRANTs that limit the application role on the audit tables "
            "(run them as the owner role after migrating; see docs/AUDIT.md).")

    def add_arguments(self, parser):
        parser.add_argument("app_role", help="the role the service connects as (owns nothing)")

    def handle(self, *args, app_role, **options):
        self.stdout.write(grants_script(app_role), ending="")
