#!/bin/sh
# A logical backup of the service's database (docs/OPERATIONS.md, "Backups and restore").
#
#   BACKUP_DATABASE_URL=postgresql://backup@db:5432/faceservice deploy/backup.sh FILE
#
# pg_dump's custom format: compressed, checked here by reading its table of
# contents back, restored with deploy/restore.sh. A dump is a consistent snapshot
# taken in one transaction while the service keeps running.
#
# The role must read every row past row-level security: a superuser, or a backup
# role with BYPASSRLS and pg_read_all_data. (pg_dump refuses a table whose policy
# would hide rows rather than write a partial dump.) Keep the password out of the
# URL (PGPASSWORD or a .pgpass file): the URL is on pg_dump's command line.
#
# The dump holds sealed embeddings, wrapped data keys and the protected
# templates: store it as personal data (encrypted storage, limited access) and
# delete it when the retention you promise runs out. It does not hold the KMS
# master key, the local keyring file, AUDIT_ANCHOR_KEY or WEBHOOK_SECRETS_KEY:
# back those up apart from it.
#
# PG_BIN_DIR: where pg_dump is, when not on PATH (its major version must be at
# least the server's).
set -eu
: "${BACKUP_DATABASE_URL:?set BACKUP_DATABASE_URL to a role that bypasses row-level security}"
out="${1:?usage: deploy/backup.sh FILE}"
bin="${PG_BIN_DIR:+$PG_BIN_DIR/}"
umask 077
partial="$out.partial"
"${bin}pg_dump" --format=custom --no-password --dbname="$BACKUP_DATABASE_URL" --file="$partial"
# A dump that cannot be listed would not restore either: fail now, not on the day it is needed.
"${bin}pg_restore" --list "$partial" >/dev/null
mv "$partial" "$out"
echo "backup written to $out ($(wc -c <"$out") bytes)"
