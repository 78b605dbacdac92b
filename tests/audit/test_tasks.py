"""Management commands, Celery tasks and beat schedules of the audit app."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
from django.core.management import call_command

from audit import tasks
from audit.models import AuditAnchor, AuditVerification
from faceservice.tenancy import platform_scope


@pytest.mark.pure
def test_beat_schedules_are_registered():
    schedule = settings.CELERY_BEAT_SCHEDULE
    assert schedule["audit-anchor-chain-heads"]["task"] == "audit.anchor_chain_heads"
    assert schedule["audit-purge-expired-events"]["task"] == "audit.purge_expired_events"
    assert schedule["audit-verify-chains"]["task"] == "audit.verify_chains"


def test_anchor_task_and_command(db, write_events):
    events = write_events(n=2)
    assert tasks.anchor_chain_heads() >= 1
    assert tasks.anchor_chain_heads() == 0  # nothing moved since
    with platform_scope():
        assert AuditAnchor.objects.filter(chain=events[0].chain, seq=2).exists()
    write_events(events[0].tenant_id, n=1)
    out = io.StringIO()
    call_command("anchor_audit_chains", stdout=out)
    assert f"anchored {events[0].chain} at seq 3 (database)" in out.getvalue()


def test_verify_task_records_results_for_the_console(db, write_events):
    events = write_events(n=2)
    tasks.verify_chains()
    with platform_scope():
        result = AuditVerification.objects.get(chain=events[0].chain)
    assert result.ok and result.events_checked == 2 and result.head_seq == 2


def test_platform_chain_verifies(db, make_auditor):
    make_auditor()  # writes a console.auditor_created event on the platform chain
    out = io.StringIO()
    call_command("verify_audit_chain", "--platform", stdout=out)
    assert "1 audit chain(s) verified" in out.getvalue()


def test_purge_command_and_task_with_nothing_old(db, write_events):
    write_events(n=1)
    out = io.StringIO()
    call_command("purge_audit_events", stdout=out)
    assert "nothing to purge" in out.getvalue()
    assert tasks.purge_expired_events() == 0


@pytest.mark.pure
def test_grants_sql_command():
    out = io.StringIO()
    call_command("audit_grants_sql", "faceservice_app", stdout=out)
    sql = out.getvalue()
    assert 'GRANT SELECT, INSERT ON TABLE "audit_anchor" TO "faceservice_app";' in sql
    assert 'REVOKE ALL ON TABLE "audit_event" FROM "faceservice_app";' in sql
    assert "UPDATE ON TABLE \"audit_event\"" not in sql
