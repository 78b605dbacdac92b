#!/bin/sh
# Restore a dump made by deploy/backup.sh into an empty database (docs/OPERATIONS.md, "Backups and restore").
#
#   RESTORE_DATABASE_URL=postgresql://postgres@new-db:5432/faceservice deploy/restore.sh FILE
#
# The target: a new server (or a new database), with the roles the dump names
# as owners and grantees (deploy/postgres/init-roles.sql makes them), the
# database created and at most the vector extension in it. RESTORE_DATABASE_URL
# names a superuser (or the database owner with the vector extension already
# created). A database that already holds tables is refused: this never
# restores over live data.
#
# One transaction: a restore that fails leaves the database as empty as it was.
# Afterwards run the migrate job (deploy/migrate.sh: checks, migrations for a
# newer release, the application role's grants), then
# `manage.py verify_audit_chain`, before starting web, workers and beat.
#
# PG_BIN_DIR: where pg_restore and psql are, when not on PATH.
set -eu
: "${RESTORE_DATABASE_URL:?set RESTORE_DATABASE_URL to the empty target database}"
dump="${1:?usage: deploy/restore.sh FILE}"
bin="${PG_BIN_DIR:+$PG_BIN_DIR/}"
tables=$("${bin}psql" --no-psqlrc --no-password --tuples-only --no-align --dbname="$RESTORE_DATABASE_URL" \
  --command="SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
if [ "$tables" != 0 ]; then
  echo "error: the target database already holds $tables tables; restore into an empty one" >&2
  exit 1
fi
"${bin}pg_restore" --exit-on-error --single-transaction --no-password \
  --dbname="$RESTORE_DATABASE_URL" "$dump"
echo "restored $dump"
