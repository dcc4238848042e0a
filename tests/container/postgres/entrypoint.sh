#!/bin/sh
# The official postgres image's first start, reduced to what deploy/compose.yaml relies on.
# As root: the socket directory (often a fresh volume) and the data directory are given to
# user postgres, the socket directory open to every user (3777), then the script goes on as
# postgres. An empty data directory gets a cluster whose superuser is POSTGRES_USER and a
# database POSTGRES_DB; socket connections are trusted, TCP ones use POSTGRES_HOST_AUTH_METHOD.
set -eu
if [ "$(id -u)" = 0 ]; then
  install -d -o postgres -g postgres -m 3777 /var/run/postgresql
  install -d -o postgres -g postgres -m 0700 "$PGDATA"
  chown -R postgres:postgres "$PGDATA"
  exec runuser -u postgres -- "$0" "$@"
fi
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  # UTF-8 like the official image's (en_US.utf8): a SQL_ASCII database gives psycopg bytes
  initdb -U "$user" --auth-local=trust --auth-host="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}" \
    --encoding=UTF8 --locale=C.UTF-8 -D "$PGDATA" >/dev/null
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  [ "$db" = postgres ] || createdb -U "$user" "$db"
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
exec "$@"
