"""The notifications move from ``risk`` to their room in the core
(copytrading/notifications, created by copytrading 0012): every existing row
is copied, with its id, read mark and time, then the old table goes.

Copied rows get ``dedup_key = "legacy:<id>"`` (they predate the keys) and are
never e-mailed (``email_status = "none"``): they were written before e-mail
existed, and mailing a backlog on deploy would surprise everyone."""

from django.db import migrations

BATCH = 2000


def copy_rows(apps, schema_editor):
    old = apps.get_model("risk", "Notification")
    new = apps.get_model("copytrading", "Notification")
    last = 0
    while True:
        rows = list(old.objects.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not rows:
            break
        new.objects.bulk_create(
            [
                new(
                    pk=r.pk,
                    user_id=r.user_id,
                    kind=r.kind,
                    severity=r.severity,
                    title=r.title,
                    body=r.body,
                    data=r.data,
                    created_at=r.created_at,
                    read_at=r.read_at,
                    dedup_key=f"legacy:{r.pk}",
                    hidden=False,
                    email_status="none",
                )
                for r in rows
            ]
        )
        last = rows[-1].pk
    if last and schema_editor.connection.vendor == "postgresql":
        # Rows were inserted with explicit ids: move the sequence past them.
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('copytrading_notification', 'id'), "
                "(SELECT MAX(id) FROM copytrading_notification))"
            )


def copy_back(apps, schema_editor):
    old = apps.get_model("risk", "Notification")
    new = apps.get_model("copytrading", "Notification")
    last = 0
    while True:
        rows = list(new.objects.filter(pk__gt=last).order_by("pk")[:BATCH])
        if not rows:
            break
        old.objects.bulk_create(
            [
                old(
                    pk=r.pk,
                    user_id=r.user_id,
                    kind=r.kind,
                    severity=r.severity,
                    title=r.title,
                    body=r.body,
                    data=r.data,
                    created_at=r.created_at,
                    read_at=r.read_at,
                )
                for r in rows
            ]
        )
        last = rows[-1].pk
    if last and schema_editor.connection.vendor == "postgresql":
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "SELECT setval(pg_get_serial_sequence('risk_notification', 'id'), "
                "(SELECT MAX(id) FROM risk_notification))"
            )


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0002_risk_event_spot_sale"),
        ("copytrading", "0012_notifications_room"),
    ]

    operations = [
        migrations.RunPython(copy_rows, copy_back),
        migrations.DeleteModel(name="Notification"),
    ]
