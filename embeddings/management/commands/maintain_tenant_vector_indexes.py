"""Build the per-tenant HNSW indexes that are missing, drop the unneeded ones (idempotent).

Celery beat runs the same every TENANT_INDEX_INTERVAL_SECONDS; this command is
for operators (after a bulk import, or to see what would be done).
"""

from django.core.management.base import BaseCommand

from embeddings.store.vector_index import maintain_tenant_indexes


class Command(BaseCommand):
    help = "Build missing per-tenant vector indexes (CONCURRENTLY) and drop unneeded ones."

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="only say what would be built and dropped")

    def handle(self, *args, dry_run=False, **options):
        work = maintain_tenant_indexes(dry_run=dry_run)
        if work.skipped:
            self.stdout.write(self.style.WARNING(f"Nothing done: {work.skipped}."))
            return
        for model_id, dimension, tenant_id, faces in work.build:
            self.stdout.write(f"to build: tenant {tenant_id}, model {model_id} ({dimension}-d, {faces} faces)")
        for name in work.drop:
            self.stdout.write(f"to drop: {name}")
        if not dry_run:
            self.stdout.write(f"Built {len(work.built)}, dropped {len(work.dropped)}.")
        if not work.build and not work.drop:
            self.stdout.write("Per-tenant vector indexes: nothing to do.")
