"""People discovery: clustering jobs, clusters and their faces, each under row-level security.

Membership rows get their foreign key to the faces here, by hand, with ON
DELETE CASCADE: faces are deleted with raw SQL in places, and a deleted face
must leave no row in the cluster tables.
"""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from faceservice.db import enable_tenant_rls

FACE_FOREIGN_KEY = (
    "ALTER TABLE embeddings_clusterface ADD CONSTRAINT clusterface_face_cascade "
    "FOREIGN KEY (face_id) REFERENCES embeddings_face (id) ON DELETE CASCADE"
)


class Migration(migrations.Migration):

    dependencies = [
        ('embeddings', '0008_face_quality'),
        ('tenants', '0004_webhooks'),
    ]

    operations = [
        migrations.CreateModel(
            name='ClusteringJob',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('state', models.CharField(choices=[('queued', 'Queued: waiting for a worker'),
                                                    ('running', 'Running: a worker holds the lease'),
                                                    ('succeeded', 'Succeeded: its clusters can be listed'),
                                                    ('failed', 'Failed: see error_code')],
                                           default='queued', max_length=12)),
                ('threshold', models.FloatField(
                    help_text='Average cosine at or above which two clusters are joined')),
                ('min_cluster_size', models.PositiveIntegerField(default=2)),
                ('attempts', models.PositiveSmallIntegerField(default=0)),
                ('lease_expires_at', models.DateTimeField(blank=True, null=True)),
                ('faces_considered', models.PositiveIntegerField(default=0)),
                ('faces_clustered', models.PositiveIntegerField(default=0)),
                ('clusters_found', models.PositiveIntegerField(default=0)),
                ('error_code', models.CharField(blank=True, default='', max_length=64)),
                ('requested_by', models.JSONField(default=dict, help_text='The actor: type, id, name')),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('started_at', models.DateTimeField(blank=True, null=True)),
                ('finished_at', models.DateTimeField(blank=True, null=True)),
                ('collection', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                                 related_name='+', to='embeddings.collection')),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+',
                                             to='tenants.tenant')),
            ],
            options={
                'db_table': 'embeddings_clusteringjob',
                'indexes': [models.Index(fields=['tenant', 'collection', 'created_at'],
                                         name='clusteringjob_collection')],
            },
        ),
        migrations.CreateModel(
            name='Cluster',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('subject_id', models.CharField(blank=True, max_length=255, null=True)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('job', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='clusters',
                                          to='embeddings.clusteringjob')),
                ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                             related_name='+', to='tenants.tenant')),
            ],
            options={'db_table': 'embeddings_cluster'},
        ),
        migrations.CreateModel(
            name='ClusterFace',
            fields=[
                ('id', models.BigAutoField(primary_key=True, serialize=False)),
                ('rank', models.PositiveSmallIntegerField(blank=True, null=True)),
                ('cluster', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                              related_name='members', to='embeddings.cluster')),
                ('face', models.ForeignKey(db_constraint=False, on_delete=django.db.models.deletion.DO_NOTHING,
                                           related_name='+', to='embeddings.face')),
                ('job', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                          related_name='+', to='embeddings.clusteringjob')),
                ('tenant', models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                             related_name='+', to='tenants.tenant')),
            ],
            options={
                'db_table': 'embeddings_clusterface',
                'constraints': [models.UniqueConstraint(fields=('tenant', 'job', 'face'),
                                                        name='clusterface_one_per_job')],
                'indexes': [models.Index(fields=['tenant', 'cluster', 'rank'], name='clusterface_cluster')],
            },
        ),
        migrations.RunSQL(FACE_FOREIGN_KEY,
                          "ALTER TABLE embeddings_clusterface DROP CONSTRAINT clusterface_face_cascade"),
        enable_tenant_rls("embeddings_clusteringjob"),
        enable_tenant_rls("embeddings_cluster"),
        enable_tenant_rls("embeddings_clusterface"),
    ]
