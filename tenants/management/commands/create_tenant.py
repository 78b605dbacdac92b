"""Operator command: create a tenant and issue its first admin API key (shown once)."""

from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from tenants import services
from tenants.models import Role, Tenant

DEFAULT_FIRST_KEY_ROLES = ["admin", "indexer", "searcher"]


class Command(BaseCommand):
    help = "Create a tenant and print its first API key (once)."

    def add_arguments(self, parser):
        parser.add_argument("name")
        parser.add_argument("--retention-days", type=int, default=None)
        parser.add_argument("--roles", default=",".join(DEFAULT_FIRST_KEY_ROLES),
                            help=f"roles of the first key, comma-separated, from {Role.values}")
        parser.add_argument("--if-missing", action="store_true",
                            help="do nothing (and print no key) when the tenant already exists")

    def handle(self, *args, name, retention_days, roles, if_missing, **options):
        if Tenant.objects.filter(name=name).exists():
            if if_missing:
                self.stdout.write(f"Tenant '{name}' exists already; its keys were shown when they were made.")
                return
            raise CommandError(f"tenant '{name}' exists already")
        actor = Actor.operator()
        try:
            tenant = services.create_tenant(name=name, face_retention_days=retention_days, actor=actor)
            issued = services.create_api_key(tenant_id=tenant.id, name=f"{name}-first-key",
                                             roles=roles.split(","), actor=actor)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Tenant '{name}' created: {tenant.id}"))
        self.stdout.write(f"API key (roles {', '.join(issued.api_key.roles)}), shown only now:")
        self.stdout.write(issued.plaintext)
