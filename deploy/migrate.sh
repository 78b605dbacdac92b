#!/bin/sh
# The migrate job: checks, migrations as the owner role, then the application role's grants.
# DATABASE_URL must name the OWNER role here (web, worker and beat use the app role).
set -eu
python manage.py check --deploy --fail-level ERROR
python manage.py migrate --noinput
python deploy/grant_app_role.py
