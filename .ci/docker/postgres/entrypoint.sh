#!/bin/sh
# CI ONLY - the part of the official postgres image's entrypoint that docker-compose.yml relies
# on: on first start (empty PGDATA) make a cluster whose superuser is POSTGRES_USER with
# POSTGRES_PASSWORD, password (scram-sha-256) authentication from the network, and the database
# POSTGRES_DB; then run the server in the foreground as user postgres.
set -eu
: "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD must be set (the official image refuses too)}"
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}

if [ "$(id -u)" = 0 ]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
  initdb -D "$PGDATA" -U "$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f "$pwfile"
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  echo "listen_addresses = '*'" >> "$PGDATA/postgresql.conf"
  if [ "$db" != postgres ]; then
    # A server on a private socket only while the database is made, so neither the healthcheck
    # nor a client sees a server that is about to stop.
    sock=$(mktemp -d)
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -c unix_socket_directories=$sock" -w start \
      >/dev/null
    psql -v ON_ERROR_STOP=1 -q -h "$sock" -U "$user" -d postgres \
      -c "CREATE DATABASE \"$db\" OWNER \"$user\""
    pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    rmdir "$sock"
  fi
  echo "entrypoint: initialised $PGDATA (user $user, database $db)"
fi

if [ "${1:-}" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" "$@"
fi
exec "$@"
