"""The hash chain, the database guards, and verify_audit_chain against real tampering."""

from __future__ import annotations

import io
import itertools
import uuid

import psycopg
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, transaction

from audit import verification
from audit.models import AuditChainHead, AuditEvent
from audit.services import GENESIS_HASH, Actor, event_hash, record_event, stored_values
from faceservice.tenancy import platform_scope, tenant_context
from tests.audit.conftest import as_superuser


def verify_command(tenant_id) -> tuple[bool, str]:
    out = io.StringIO()
    try:
        call_command("verify_audit_chain", "--tenant", str(tenant_id), stdout=out)
    except CommandError as exc:
        assert exc.returncode == 1
        return False, out.getvalue()
    return True, out.getvalue()


def test_events_link_into_a_chain_that_verifies(db, write_events):
    events = write_events(n=4)
    assert [e.seq for e in events] == [1, 2, 3, 4]
    assert events[0].prev_hash == GENESIS_HASH
    for previous, event in itertools.pairwise(events):
        assert event.prev_hash == previous.hash
    with platform_scope():
        stored = AuditEvent.objects.get(id=events[2].id)
    assert event_hash(stored_values(stored)) == stored.hash
    ok, out = verify_command(events[0].tenant_id)
    assert ok, out
    assert "4 events checked" in out


def test_values_are_hashed_as_the_database_returns_them(db, write_events):
    """UUIDs, tuples, big floats and IPv6 spellings come back from PostgreSQL changed."""
    tenant_id = uuid.uuid4()
    with tenant_context(tenant_id):
        record_event(tenant_id=tenant_id, actor=Actor(type="api_key", id="k", client_ip="2001:DB8:0::1"),
                     action="faces.indexed", target={"asset_id": uuid.uuid4(), "face_ids": ("a", "b")},
                     details={"big": 1e20, "ratio": 0.1, "nested": {"n": [1, 2.5]}},
                     receipt_id=uuid.uuid4())
    assert verification.verify_chain(str(tenant_id)).ok


def test_app_role_cannot_update_delete_or_truncate_events(db, write_events):
    event = write_events(n=1)[0]
    statements = [
        lambda: AuditEvent.objects.filter(id=event.id).update(action="nothing.happened"),
        lambda: AuditEvent.objects.filter(id=event.id).delete(),
    ]
    for statement in statements:
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
                tenant_context(event.tenant_id):
            statement()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), \
            transaction.get_connection().cursor() as cursor:
        cursor.execute("TRUNCATE audit_event")


def test_an_action_rolled_back_leaves_no_event(db, tenant):
    from tenants import services
    from tenants.models import ApiKey

    with platform_scope():
        before = AuditChainHead.objects.get(chain=str(tenant.id)).seq
    with pytest.raises(RuntimeError), transaction.atomic():
        services.create_api_key(tenant_id=tenant.id, name="doomed", roles=["admin"],
                                actor=Actor.operator("tests"))
        raise RuntimeError("the action fails after its event was written")
    with platform_scope():
        assert AuditChainHead.objects.get(chain=str(tenant.id)).seq == before
        assert not AuditEvent.objects.filter(chain=str(tenant.id), action="api_key.created",
                                             details__name="doomed").exists()
        assert not ApiKey.objects.filter(name="doomed").exists()


def test_an_event_that_cannot_be_written_aborts_the_action(db, tenant, monkeypatch):
    from tenants import services
    from tenants.models import ApiKey

    real = services.record_event

    def failing(**kwargs):
        return real(**{**kwargs, "action": "x" * 100})  # longer than the column: the INSERT fails

    monkeypatch.setattr(services, "record_event", failing)
    with pytest.raises(DatabaseError):
        services.create_api_key(tenant_id=tenant.id, name="never", roles=["admin"],
                                actor=Actor.operator("tests"))
    with platform_scope():
        assert not ApiKey.objects.filter(name="never").exists()


def test_deleting_face_data_or_the_tenant_keeps_its_audit_events(db, make_tenant):
    from tenants.models import Tenant

    tenant = make_tenant()
    receipt = uuid.uuid4()
    with tenant_context(tenant.id):
        record_event(tenant_id=tenant.id, actor=Actor.system("tests"), action="faces.deleted",
                     target={"subject_id": "s-1"}, details={"faces": 3}, receipt_id=receipt)
    Tenant.objects.filter(id=tenant.id).delete()  # cascades to everything the tenant owns
    with platform_scope():
        assert AuditEvent.objects.filter(receipt_id=receipt).exists()
    assert verification.verify_chain(str(tenant.id)).ok


# --- Tampering as the database superuser (data must be committed: another connection) ------

def test_verify_names_an_altered_event(committed_db, write_events):
    events = write_events(n=6)
    with as_superuser() as conn:
        conn.execute("UPDATE audit_event SET details = '{\"i\": 99}' WHERE id = %s", [events[3].id])
    ok, out = verify_command(events[0].tenant_id)
    assert not ok
    assert f"first broken or missing event: seq 4 (event id {events[3].id})" in out
    assert "fields were changed" in out


def test_verify_names_an_event_altered_and_rehashed(committed_db, write_events):
    events = write_events(n=6)
    with platform_scope():
        values = stored_values(AuditEvent.objects.get(id=events[2].id))
    values["outcome"] = "failure"
    with as_superuser() as conn:
        conn.execute("UPDATE audit_event SET outcome = 'failure', hash = %s WHERE id = %s",
                     [event_hash(values), events[2].id])
    ok, out = verify_command(events[0].tenant_id)
    assert not ok
    assert "first broken or missing event: seq 3" in out


def test_verify_names_a_deleted_event(committed_db, write_events):
    events = write_events(n=6)
    with as_superuser(replica=False) as conn:
        # The owner could do this too: disable the trigger, delete, enable it again.
        conn.execute("ALTER TABLE audit_event DISABLE TRIGGER audit_event_append_only")
        try:
            conn.execute("DELETE FROM audit_event WHERE id = %s", [events[1].id])
        finally:
            conn.execute("ALTER TABLE audit_event ENABLE TRIGGER audit_event_append_only")
    ok, out = verify_command(events[0].tenant_id)
    assert not ok
    assert "first broken or missing event: seq 2" in out
    assert "missing" in out


def test_anchors_reveal_a_cut_off_tail_even_with_the_head_rewound(committed_db, write_events):
    from audit.anchors import anchor_chain_heads

    events = write_events(n=5)
    anchor_chain_heads()
    with as_superuser() as conn:
        conn.execute("DELETE FROM audit_event WHERE id = ANY(%s)", [[events[3].id, events[4].id]])
        conn.execute("UPDATE audit_chainhead SET seq = 3, hash = %s WHERE chain = %s",
                     [events[2].hash, events[2].chain])
    ok, out = verify_command(events[0].tenant_id)
    assert not ok
    assert "first broken or missing event: seq 4" in out
    assert "cut off" in out


def test_a_forged_anchor_is_reported(committed_db, write_events):
    from audit.anchors import anchor_chain_heads

    events = write_events(n=3)
    anchor_chain_heads()
    with as_superuser() as conn:
        conn.execute("UPDATE audit_anchor SET hash = %s WHERE chain = %s", ["f" * 64, events[0].chain])
    report = verification.verify_chain(events[0].chain)
    assert [p.kind for p in report.problems] == ["anchor_invalid"]


def test_hardened_app_role_cannot_change_audit_rows_or_triggers(committed_db, write_events):
    """The production hardening in docs/AUDIT.md, applied to a real role."""
    from audit.hardening import grants_script

    event = write_events(n=1)[0]
    role, password = f"audit_app_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    with as_superuser(replica=False) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN NOSUPERUSER NOBYPASSRLS PASSWORD '{password}'")
        admin.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        admin.execute(grants_script(role))
        url = admin.info.dsn
    conninfo = psycopg.conninfo.make_conninfo(url, user=role, password=password)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute("SELECT set_config('app.platform_scope', 'on', false)")
            assert conn.execute("SELECT count(*) FROM audit_event WHERE id = %s", [event.id]).fetchone()[0] == 1
            refused = [
                ("UPDATE audit_event SET action = 'x' WHERE id = %s", "permission denied"),
                ("DELETE FROM audit_event WHERE id = %s", "append-only"),
                ("TRUNCATE audit_event", "permission denied"),
                ("ALTER TABLE audit_event DISABLE TRIGGER ALL", "must be owner"),
                ("UPDATE audit_anchor SET seq = 0 WHERE id = %s", "permission denied"),
            ]
            for statement, message in refused:
                with pytest.raises(psycopg.Error, match=message):
                    conn.execute(statement, [event.id] if "%s" in statement else None)
    finally:
        with as_superuser(replica=False) as admin:
            admin.execute(f"DROP OWNED BY {role}")
            admin.execute(f"DROP ROLE {role}")


def test_chain_verifies_across_the_fast_and_the_platform_scope_paths(db, make_tenant):
    """Appends bound to the tenant (one statement after the head lock) and appends from
    elsewhere (no binding, another tenant's binding, the first event) make one valid chain."""
    tenant, other = make_tenant(), make_tenant()
    actor = Actor.system("tests")
    record_event(tenant_id=tenant.id, actor=actor, action="step.unbound")
    with tenant_context(tenant.id):
        bound = [record_event(tenant_id=tenant.id, actor=actor, action="step.bound") for _ in range(3)]
    with tenant_context(other.id):
        record_event(tenant_id=tenant.id, actor=actor, action="step.other_binding")
    with platform_scope():
        record_event(tenant_id=tenant.id, actor=actor, action="step.platform")
        events = list(AuditEvent.objects.filter(tenant_id=tenant.id).order_by("seq"))
        head = AuditChainHead.objects.get(chain=str(tenant.id))
    actions = [e.action for e in events if e.action.startswith("step.")]
    assert actions == ["step.unbound", "step.bound", "step.bound", "step.bound", "step.other_binding",
                       "step.platform"]
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert (head.seq, head.hash) == (events[-1].seq, events[-1].hash)
    assert bound[1].id == events[[e.id for e in events].index(bound[1].id)].id
    assert bound[1].hash == event_hash(stored_values(events[[e.id for e in events].index(bound[1].id)]))
    assert verification.verify_chain(str(tenant.id)).ok
