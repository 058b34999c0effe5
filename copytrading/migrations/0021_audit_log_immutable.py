"""The audit trail is append-only in the database, not only in the admin:
on PostgreSQL a trigger refuses any UPDATE or DELETE of an entry, with one
exception: the actor set to NULL and nothing else changed, which is what
Django's ``on_delete=SET_NULL`` does when a user is deleted (the entry keeps
the username in ``additional_data``). SQLite (embedded mode) has no such
guard; the admin is read-only there too. docs/decisions.md §71."""

from django.db import migrations

FORWARD = """
CREATE FUNCTION audit_log_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' AND NEW.actor_id IS NULL
       AND (to_jsonb(NEW) - 'actor_id') = (to_jsonb(OLD) - 'actor_id') THEN
        RETURN NEW;  -- a deleted user's entries lose the link, keep the name
    END IF;
    RAISE EXCEPTION 'audit log entries are immutable (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_immutable
    BEFORE UPDATE OR DELETE ON auditlog_logentry
    FOR EACH ROW EXECUTE FUNCTION audit_log_refuse_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS audit_log_immutable ON auditlog_logentry;
DROP FUNCTION IF EXISTS audit_log_refuse_change();
"""


def forward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(FORWARD, params=None)


def backward(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(BACKWARD, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("copytrading", "0020_execution_decision_context"),
        ("auditlog", "0017_add_actor_email"),
    ]

    operations = [migrations.RunPython(forward, backward)]
