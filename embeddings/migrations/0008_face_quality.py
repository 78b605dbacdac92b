from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('embeddings', '0007_collections'),
    ]

    operations = [
        migrations.AddField(
            model_name='face',
            name='quality',
            field=models.JSONField(blank=True, null=True),
        ),
    ]
