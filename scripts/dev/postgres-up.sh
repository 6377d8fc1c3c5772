#!/usr/bin/env bash
# Starts the local PostgreSQL 15 cluster for development and tests, with the role and database
# StreamSpace uses, and prints the URL the store tests read:
#
#   eval "$(scripts/dev/postgres-up.sh)"
#   cargo test -p streamspace-store
#
# Idempotent: run it again whenever, whether the cluster is up or the role exists. Needs root
# (CI runs it as root), or sudo to reach the postgres account. Progress goes to stderr; stdout
# carries only the export line.
set -euo pipefail

readonly VERSION=15 CLUSTER=main HOST=127.0.0.1
readonly ROLE=streamspace PASSWORD=streamspace DATABASE=streamspace

log() { echo "postgres-up: $*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

# Runs psql as the postgres superuser over the local socket.
psql_admin() {
    as_root runuser -u postgres -- psql --no-psqlrc -v ON_ERROR_STOP=1 -qAt -p "$port" -d postgres
}

if [ ! -x "/usr/lib/postgresql/$VERSION/bin/postgres" ]; then
    log "installing PostgreSQL $VERSION"
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get install -y -q "postgresql-$VERSION" >&2 \
        || { as_root apt-get update -q >&2 && as_root apt-get install -y -q "postgresql-$VERSION" >&2; }
fi

# pg_lsclusters -h prints: version cluster port status owner data-directory log-file
cluster_field() { pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" -v f="$1" '$1 == v && $2 == c { print $f }'; }

if [ -z "$(cluster_field 2)" ]; then
    log "creating cluster $VERSION/$CLUSTER"
    as_root pg_createcluster "$VERSION" "$CLUSTER" >&2
fi
port=$(cluster_field 3)
if [ "$(cluster_field 4)" != online ]; then
    log "starting cluster $VERSION/$CLUSTER on port $port"
    as_root pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi
for _ in $(seq 1 30); do
    pg_isready -q -h "$HOST" -p "$port" && break
    sleep 1
done
pg_isready -q -h "$HOST" -p "$port" || { log "PostgreSQL is not accepting connections on $HOST:$port"; exit 1; }

# CREATEDB: the tests create (and drop) a database each. pg_signal_backend: they drop it WITH (FORCE),
# which must also end an autovacuum worker that has just started on it. The password is set every time,
# so a role left over with another one is repaired.
psql_admin <<SQL >&2
SELECT format('CREATE ROLE %I', '$ROLE') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE') \gexec
ALTER ROLE $ROLE WITH LOGIN CREATEDB PASSWORD '$PASSWORD';
GRANT pg_signal_backend TO $ROLE;
SELECT format('CREATE DATABASE %I OWNER %I', '$DATABASE', '$ROLE')
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DATABASE') \gexec
SQL

log "ready on $HOST:$port"
echo "export STREAMSPACE_TEST_DATABASE_URL=postgres://$ROLE:$PASSWORD@$HOST:$port/$DATABASE"
