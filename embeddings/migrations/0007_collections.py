"""Collections: every face, asset and index job belongs to one of the tenant's collections.

Existing rows move into each tenant's `default` collection (the one every call
that names no collection uses), tied to the model its faces were made with.
The per-tenant HNSW indexes become per-collection ones: the old ones are left
for vector_index.maintain_tenant_indexes to drop, and the new ones are built by
the same task.
"""

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

from faceservice.db import enable_tenant_rls

TABLES = ("embeddings_face", "embeddings_asset", "embeddings_indexjob")


def into_default_collections(apps, schema_editor):
    # The migration role owns the tables, but FORCE ROW LEVEL SECURITY binds it
    # too: the platform scope lets it see every tenant's rows.
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT set_config('app.platform_scope', 'on', true)")
        cursor.execute(
            "SELECT tenant_id FROM embeddings_face UNION SELECT tenant_id FROM embeddings_asset "
            "UNION SELECT tenant_id FROM embeddings_indexjob")
        tenants = [row[0] for row in cursor.fetchall()]
        for tenant_id in tenants:
            cursor.execute("SELECT DISTINCT model_id FROM embeddings_face WHERE tenant_id = %s", [tenant_id])
            models_used = [row[0] for row in cursor.fetchall()]
            collection_id = uuid.uuid4()
            cursor.execute(
                "INSERT INTO embeddings_collection (id, tenant_id, name, model_id, status, created_at) "
                "VALUES (%s, %s, 'default', %s, 'active', now())",
                [collection_id, tenant_id, models_used[0] if len(models_used) == 1 else None])
            for table in TABLES:
                cursor.execute(f"UPDATE {table} SET collection_id = %s WHERE tenant_id = %s",  # noqa: S608
                               [collection_id, tenant_id])
        cursor.execute("SELECT set_config('app.platform_scope', '', true)")


class Migration(migrations.Migration):

    dependencies = [
        ('embeddings', '0006_reseal_in_one_format'),
        ('tenants', '0004_webhooks'),
    ]

    operations = [
        migrations.CreateModel(
            name='Collection',
            fields=[
                ('id', models.UUIDField(default=uuid.uuid4, editable=False, primary_key=True, serialize=False)),
                ('name', models.CharField(max_length=100)),
                ('model_id', models.CharField(blank=True, max_length=100, null=True)),
                ('face_retention_days', models.PositiveIntegerField(
                    blank=True, help_text="Overrides the tenant's retention for this collection's faces",
                    null=True)),
                ('status', models.CharField(choices=[('active', 'Active'), ('deleting', 'Deleting')],
                                            default='active', max_length=10)),
                ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                ('tenant', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='+',
                                             to='tenants.tenant')),
            ],
            options={
                'db_table': 'embeddings_collection',
                'constraints': [models.UniqueConstraint(condition=models.Q(('status', 'active')),
                                                        fields=('tenant', 'name'),
                                                        name='collection_name_per_tenant')],
            },
        ),
        enable_tenant_rls("embeddings_collection"),
        migrations.AddField(
            model_name='asset', name='collection',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to='embeddings.collection'),
        ),
        migrations.AddField(
            model_name='face', name='collection',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to='embeddings.collection'),
        ),
        migrations.AddField(
            model_name='indexjob', name='collection',
            field=models.ForeignKey(db_index=False, null=True, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to='embeddings.collection'),
        ),
        migrations.AddField(
            model_name='deletionrequest', name='collection_id',
            field=models.UUIDField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name='deletionrequest', name='requested',
            field=models.JSONField(help_text='{collection?, face_ids | asset_ids | subject_ids: [...]}, '
                                             '{collection} (the whole collection) or {purge: true}'),
        ),
        migrations.RunPython(into_default_collections, migrations.RunPython.noop),
        # Queued deletions made before collections were in the default one.
        migrations.RunSQL(
            "SELECT set_config('app.platform_scope', 'on', true); "
            "UPDATE embeddings_deletionrequest d SET collection_id = c.id FROM embeddings_collection c "
            "WHERE c.tenant_id = d.tenant_id AND c.name = 'default' AND NOT (d.requested ? 'purge'); "
            "SELECT set_config('app.platform_scope', '', true)",
            migrations.RunSQL.noop),
        migrations.AlterField(
            model_name='asset', name='collection',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to='embeddings.collection'),
        ),
        migrations.AlterField(
            model_name='face', name='collection',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.PROTECT,
                                    related_name='+', to='embeddings.collection'),
        ),
        migrations.AlterField(
            model_name='indexjob', name='collection',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE,
                                    related_name='+', to='embeddings.collection'),
        ),
        migrations.RemoveConstraint(model_name='asset', name='asset_unique_per_tenant'),
        migrations.AddConstraint(
            model_name='asset',
            constraint=models.UniqueConstraint(fields=('tenant', 'collection', 'asset_id'),
                                               name='asset_unique_per_collection'),
        ),
        migrations.AddIndex(
            model_name='asset',
            index=models.Index(fields=['tenant', 'collection', 'subject_id'], name='asset_collection_subject'),
        ),
        migrations.RemoveIndex(model_name='face', name='face_tenant_generation'),
        migrations.RemoveIndex(model_name='face', name='face_tenant_asset'),
        migrations.RemoveIndex(model_name='face', name='face_tenant_subject'),
        migrations.RemoveIndex(model_name='face', name='face_tenant_created'),
        migrations.AddIndex(
            model_name='face',
            index=models.Index(fields=['tenant', 'collection', 'gallery_generation'],
                               name='face_collection_generation'),
        ),
        migrations.AddIndex(
            model_name='face',
            index=models.Index(fields=['tenant', 'collection', 'asset_id'], name='face_collection_asset'),
        ),
        migrations.AddIndex(
            model_name='face',
            index=models.Index(fields=['tenant', 'collection', 'subject_id'], name='face_collection_subject'),
        ),
        migrations.AddIndex(
            model_name='face',
            index=models.Index(fields=['tenant', 'collection', 'created_at', 'id'], name='face_collection_created'),
        ),
    ]
