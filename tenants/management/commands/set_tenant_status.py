"""Operator command: suspend or reactivate a tenant."""

from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from tenants import services
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Suspend or reactivate a tenant (suspended tenants' keys get 401)."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="tenant name or id")
        parser.add_argument("status", choices=Tenant.Status.values)

    def handle(self, *args, tenant, status, **options):
        found = Tenant.objects.filter(name=tenant).first()
        if found is None:
            try:
                found = Tenant.objects.filter(id=tenant).first()
            except Exception:  # noqa: BLE001 - not a uuid
                found = None
        if found is None:
            raise CommandError(f"no tenant named or with id '{tenant}'")
        services.set_tenant_status(tenant=found, status=status, actor=Actor.operator())
        self.stdout.write(self.style.SUCCESS(f"Tenant '{found.name}' is now {status}."))
