"""Operator command: rotate a tenant's data key, or re-wrap all tenant keys under a new master key."""

from django.core.management.base import BaseCommand, CommandError

from audit.services import Actor
from embeddings.store.services import reencrypt_batch
from tenants import data_keys
from tenants.models import Tenant
from tenants.tasks import reencrypt_tenant_faces


class Command(BaseCommand):
    help = ("Rotate key material. `tenant NAME`: new data key + re-encrypt its faces (online; "
            "searches keep working). `master --to KEY_ID`: re-wrap every tenant key under a new KMS "
            "key without touching faces. Both are resumable: run again after a crash.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="what", required=True)
        tenant = sub.add_parser("tenant", help="rotate one tenant's data key")
        tenant.add_argument("name")
        tenant.add_argument("--background", action="store_true", help="re-encrypt in Celery workers")
        tenant.add_argument("--resume", action="store_true",
                            help="only finish an interrupted rotation (no new key)")
        master = sub.add_parser("master", help="re-wrap all tenant keys under another master key")
        master.add_argument("--to", dest="destination", default=None,
                            help="KMS key id/ARN; with the local provider omit it to create a new local key")

    def handle(self, *args, what, **options):
        actor = Actor.operator("rotate_keys")
        if what == "tenant":
            return self._tenant(options["name"], options["background"], options["resume"], actor)
        return self._master(options["destination"], actor)

    def _tenant(self, name: str, background: bool, resume: bool, actor: Actor) -> None:
        tenant = Tenant.objects.filter(name=name).first()
        if tenant is None:
            raise CommandError(f"no tenant named '{name}'")
        if not resume:
            row = data_keys.start_key_rotation(tenant_id=tenant.id, actor=actor)
            self.stdout.write(f"New data key v{row.version} is active.")
        if background:
            reencrypt_tenant_faces.delay(str(tenant.id))
            self.stdout.write("Re-encryption queued.")
            return
        moved = 0
        while count := reencrypt_batch(tenant_id=tenant.id, actor=actor):
            moved += count
            self.stdout.write(f"  re-encrypted {moved} faces")
        reencrypt_batch(tenant_id=tenant.id, actor=actor)  # retires the old version when empty
        self.stdout.write(self.style.SUCCESS(f"Done: {moved} faces under the new key."))

    def _master(self, destination: str | None, actor: Actor) -> None:
        provider = data_keys.kms_provider()
        if destination is None:
            if not hasattr(provider, "create_master_key"):
                raise CommandError("--to is required with the AWS provider")
            destination = provider.create_master_key()
            self.stdout.write(f"Created local master key {destination}.")
        count = data_keys.rewrap_all(destination_key_id=provider.resolve_key_id(destination), actor=actor)
        self.stdout.write(self.style.SUCCESS(f"Re-wrapped {count} tenant keys under {destination}."))
