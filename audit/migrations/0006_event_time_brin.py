"""A BRIN index on audit_event.occurred_at, for the anomaly detector's window reads.

Built CONCURRENTLY (so not in a transaction): the table may be large and is
written by every audited request; a plain CREATE INDEX would block those writes.
"""

import django.contrib.postgres.indexes
from django.contrib.postgres.operations import AddIndexConcurrently
from django.db import migrations


class Migration(migrations.Migration):

    atomic = False

    dependencies = [
        ('audit', '0005_login_throttle_per_address'),
    ]

    operations = [
        AddIndexConcurrently(
            model_name='auditevent',
            index=django.contrib.postgres.indexes.BrinIndex(fields=['occurred_at'], name='audit_event_time_brin'),
        ),
    ]
