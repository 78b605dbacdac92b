"""Verify audit hash chains and name the first broken or missing event.

    manage.py verify_audit_chain                  every chain (all tenants + platform)
    manage.py verify_audit_chain --tenant <uuid>  one tenant's chain
    manage.py verify_audit_chain --platform       the platform (staff/operator) chain
    manage.py verify_audit_chain --s3             also check the anchors in the S3 sink

Exits 1 when any chain fails, so it can run from cron or CI.
"""

from __future__ import annotations

from uuid import UUID

from django.core.management.base import BaseCommand, CommandError

from audit import verification
from audit.models import PLATFORM_CHAIN, chain_of


class Command(BaseCommand):
    help = "Verify the audit hash chains; name the first broken or missing event."

    def add_arguments(self, parser):
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--tenant", type=UUID, help="verify only this tenant's chain")
        group.add_argument("--platform", action="store_true", help="verify only the platform chain")
        parser.add_argument("--s3", action="store_true", help="also check anchors stored in S3")
        parser.add_argument("--no-record", action="store_true",
                            help="do not store the result for the console")

    def handle(self, *args, tenant=None, platform=False, s3=False, no_record=False, **options):
        if tenant:
            chains = [chain_of(tenant)]
        elif platform:
            chains = [PLATFORM_CHAIN]
        else:
            chains = verification.all_chains()
        broken = 0
        for chain in chains:
            report = verification.verify_chain(chain, use_s3=s3)
            if not no_record:
                verification.record_verification(report)
            self._print(report)
            broken += not report.ok
        if broken:
            raise CommandError(f"{broken} of {len(chains)} audit chain(s) failed verification", returncode=1)
        self.stdout.write(self.style.SUCCESS(f"{len(chains)} audit chain(s) verified"))

    def _print(self, report: verification.ChainReport) -> None:
        summary = (f"chain {report.chain}: {report.events_checked} events checked "
                   f"(from seq {report.start_seq + 1}), head seq {report.head_seq}, "
                   f"{report.anchors_checked} anchors checked")
        if report.ok:
            self.stdout.write(f"OK      {summary}")
            return
        first = report.first_problem
        where = f"seq {first.seq}" + (f" (event id {first.event_id})" if first.event_id else "")
        self.stdout.write(self.style.ERROR(f"BROKEN  {summary}"))
        self.stdout.write(f"        first broken or missing event: {where}: {first.message}")
        for problem in sorted(report.problems, key=lambda p: p.seq)[1:10]:
            self.stdout.write(f"        also: {problem.message}")
