"""The notifications move from ``risk`` to their room in the core
(copytrading/notifications, created by copytrading 0012): every existing row
is copied, with its id, read mark and time, then the old table goes.

Copied rows get ``dedup_key = "legacy:<id>"`` (they predate the keys) and are
never e-mailed (``email_status = "none"``): they were written before e-mail
existed, and mailing a backlog on deploy would surprise everyone."""

from django.db import migrations

BATCH = 2000


SHARED = ("pk", "user_id", "kind", "severity", "title", "body", "data", "created_at", "read_at")


def _copy(source, target, schema_editor, **extra) -> None:
    """Copy every row of ``source`` into ``target`` with its id, in batches,
    then move ``target``'s id sequence past them (PostgreSQL; SQLite's
    AUTOINCREMENT follows by itself). ``extra``: row -> value per new field."""
    last = 0
    while True:
        rows = list(source.objects.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not rows:
            break
        target.objects.bulk_create(
            [
                target(**{f: getattr(r, f) for f in SHARED}, **{f: value(r) for f, value in extra.items()})
                for r in rows
            ]
        )
        last = rows[-1].pk
    if last and schema_editor.connection.vendor == "postgresql":
        table = target._meta.db_table
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT MAX(id) FROM {table}))")


def copy_rows(apps, schema_editor):
    _copy(
        apps.get_model("risk", "Notification"),
        apps.get_model("copytrading", "Notification"),
        schema_editor,
        dedup_key=lambda r: f"legacy:{r.pk}",
        hidden=lambda r: False,
        email_status=lambda r: "none",
    )


def copy_back(apps, schema_editor):
    _copy(apps.get_model("copytrading", "Notification"), apps.get_model("risk", "Notification"), schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0002_risk_event_spot_sale"),
        ("copytrading", "0012_notifications_room"),
    ]

    operations = [
        migrations.RunPython(copy_rows, copy_back),
        migrations.DeleteModel(name="Notification"),
    ]
