"""Operator command: issue another API key for a tenant (shown once)."""

from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from tenants import services
from tenants.models import Role, Tenant


class Command(BaseCommand):
    help = "Issue an API key for a tenant and print it once."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant name")
        parser.add_argument("--name", required=True)
        parser.add_argument("--roles", required=True, help=f"comma-separated, from {Role.values}")

    def handle(self, *args, tenant, name, roles, **options):
        found = Tenant.objects.filter(name=tenant).first()
        if found is None:
            raise CommandError(f"no tenant named '{tenant}'")
        try:
            issued = services.create_api_key(tenant_id=found.id, name=name, roles=roles.split(","),
                                             actor=Actor.operator())
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(issued.plaintext)
