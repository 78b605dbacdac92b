"""Console lock-out per user name *and* client address, with a growing back-off.

The old table was keyed by user name alone. Its rows are short-lived counters,
so it is replaced rather than converted: a lock-out running while this migrates
ends early, nothing else is lost.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0004_retention_guard_and_rls'),
    ]

    operations = [
        migrations.DeleteModel(name='StaffLoginThrottle'),
        migrations.CreateModel(
            name='StaffLoginThrottle',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('username', models.CharField(max_length=150)),
                ('address', models.CharField(blank=True, max_length=45)),
                ('failures', models.PositiveIntegerField(default=0)),
                ('lockouts', models.PositiveIntegerField(default=0)),
                ('last_failure_at', models.DateTimeField(blank=True, null=True)),
                ('locked_until', models.DateTimeField(blank=True, null=True)),
            ],
            options={
                'db_table': 'audit_staff_login_throttle',
                'constraints': [models.UniqueConstraint(fields=('username', 'address'),
                                                        name='audit_login_throttle_name_addr')],
            },
        ),
    ]
