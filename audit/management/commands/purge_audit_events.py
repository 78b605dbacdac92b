from django.conf import settings
from django.core.management.base import BaseCommand

from audit.retention import purge_expired_events


class Command(BaseCommand):
    help = "Purge audit events older than AUDIT_RETENTION_DAYS, leaving signed checkpoints."

    def add_arguments(self, parser):
        parser.add_argument("--retention-days", type=int, default=None,
                            help=f"override AUDIT_RETENTION_DAYS ({settings.AUDIT_RETENTION_DAYS})")

    def handle(self, *args, retention_days=None, **options):
        results = purge_expired_events(retention_days=retention_days)
        for result in results:
            self.stdout.write(f"{result.chain}: purged {result.purged_events} events through seq "
                              f"{result.through_seq}")
        if not results:
            self.stdout.write("nothing to purge")
