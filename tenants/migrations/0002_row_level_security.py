from django.db import migrations

from faceservice.db import enable_tenant_rls


class Migration(migrations.Migration):
    dependencies = [("tenants", "0001_initial")]
    operations = [enable_tenant_rls("tenants_apikey")]
