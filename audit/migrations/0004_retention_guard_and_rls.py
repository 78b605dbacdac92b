"""Database-level guards for the new audit tables.

- audit_event: UPDATE and TRUNCATE are always refused; DELETE is allowed only for
  an event that a retention checkpoint covers (same chain, seq <= checkpoint.seq,
  older than the checkpoint's cutoff). So the only way an event leaves the table
  (short of the owner disabling the trigger, see docs/AUDIT.md) is a recorded
  retention purge, and verification can start from the checkpoint.
- audit_retention_checkpoint: append-only; an insert must name an existing event
  by its hash, older than the cutoff, and the cutoff must be at least
  audit_min_retention() in the past. That floor lives in the schema, so only the
  schema owner (a migration) can lower it, not a setting of the application.
- audit_anchor: append-only.
- Row-level security on every table carrying a tenant_id.
"""

from django.db import migrations

from faceservice.db import enable_tenant_rls

GUARDS = """
CREATE OR REPLACE FUNCTION audit_min_retention() RETURNS interval
    LANGUAGE sql IMMUTABLE AS $$ SELECT interval '365 days' $$;

CREATE OR REPLACE FUNCTION audit_event_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
        SELECT 1 FROM audit_retention_checkpoint c
        WHERE c.chain = OLD.chain AND c.seq >= OLD.seq AND OLD.occurred_at < c.cutoff
    ) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit events are append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END $$;

DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_event_guard();

CREATE OR REPLACE FUNCTION audit_checkpoint_guard() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    ev record;
BEGIN
    IF NEW.cutoff > now() - audit_min_retention() THEN
        RAISE EXCEPTION 'audit events younger than % may not be purged', audit_min_retention()
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    SELECT hash, occurred_at INTO ev FROM audit_event WHERE chain = NEW.chain AND seq = NEW.seq;
    IF NOT FOUND OR ev.hash <> NEW.hash OR ev.occurred_at >= NEW.cutoff THEN
        RAISE EXCEPTION 'a retention checkpoint must name an existing event, by its hash, older than the cutoff'
            USING ERRCODE = 'check_violation';
    END IF;
    IF EXISTS (SELECT 1 FROM audit_retention_checkpoint c
               WHERE c.chain = NEW.chain AND c.seq >= NEW.seq) THEN
        RAISE EXCEPTION 'retention checkpoints only move forward' USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER audit_checkpoint_insert BEFORE INSERT ON audit_retention_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoint_guard();
CREATE TRIGGER audit_checkpoint_append_only BEFORE UPDATE OR DELETE ON audit_retention_checkpoint
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_checkpoint_no_truncate BEFORE TRUNCATE ON audit_retention_checkpoint
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();

CREATE TRIGGER audit_anchor_append_only BEFORE UPDATE OR DELETE ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
"""

DROP_GUARDS = """
DROP TRIGGER IF EXISTS audit_anchor_no_truncate ON audit_anchor;
DROP TRIGGER IF EXISTS audit_anchor_append_only ON audit_anchor;
DROP TRIGGER IF EXISTS audit_checkpoint_no_truncate ON audit_retention_checkpoint;
DROP TRIGGER IF EXISTS audit_checkpoint_append_only ON audit_retention_checkpoint;
DROP TRIGGER IF EXISTS audit_checkpoint_insert ON audit_retention_checkpoint;
DROP FUNCTION IF EXISTS audit_checkpoint_guard();
DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event;
CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change();
DROP FUNCTION IF EXISTS audit_event_guard();
DROP FUNCTION IF EXISTS audit_min_retention();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0003_anchors_checkpoints_console")]
    operations = [
        migrations.RunSQL(GUARDS, DROP_GUARDS),
        enable_tenant_rls("audit_anchor"),
        enable_tenant_rls("audit_retention_checkpoint"),
        enable_tenant_rls("audit_verification"),
    ]
