# Execution.recorded_at: when the row was written (created_at became the
# leader event's time in 0024). Two steps, both catalogue-only on PostgreSQL
# (no rewrite of the partitioned table; ALTER on the parent reaches every
# partition): the column arrives with a constant default, so the rows already
# there read 1970-01-01 ("unknown", and outside the live stream's late-commit
# window, which would otherwise resend them for 30 s), then the default
# becomes the time of writing.

import datetime

import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("copytrading", "0025_partition_executions_and_transfers"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="recorded_at",
            field=models.DateTimeField(db_default=datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)),
        ),
        migrations.AlterField(
            model_name="execution",
            name="recorded_at",
            field=models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
        ),
    ]
