#!/usr/bin/env bash
# Start a throw-away PostgreSQL on 127.0.0.1 for the distributed-tuning tests and print its URL
# (last line of stdout). Idempotent and quick: a server that already answers is reused; the
# distribution's packages are installed with apt-get only when no PostgreSQL binaries exist.
# Settings (environment): DEA_PG_PORT (5432), DEA_PG_DIR (/tmp/dea-postgres), DEA_PG_DB
# (dea_optuna), DEA_PG_USER / DEA_PG_PASSWORD (dea / dea). Exports nothing.
set -euo pipefail

port="${DEA_PG_PORT:-5432}"
root="${DEA_PG_DIR:-/tmp/dea-postgres}"
db="${DEA_PG_DB:-dea_optuna}"
user="${DEA_PG_USER:-dea}"
password="${DEA_PG_PASSWORD:-dea}"
url="postgresql://${user}:${password}@127.0.0.1:${port}/${db}"

log() { echo "postgres.sh: $*" >&2; }

ready() { PGPASSWORD="$password" PGCONNECT_TIMEOUT=3 psql -h 127.0.0.1 -p "$port" -U "$user" -d "$db" -Atqc 'select 1' >/dev/null 2>&1; }

if command -v psql >/dev/null 2>&1 && ready; then
  log "reusing the server on 127.0.0.1:$port"
  echo "$url"
  exit 0
fi

find_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/initdb" ] && { echo "$d"; return 0; }
  done
  command -v initdb >/dev/null 2>&1 && { dirname "$(command -v initdb)"; return 0; }
  return 1
}

if ! bin=$(find_bin); then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    log "no PostgreSQL binaries and cannot apt-get install them (need root on Debian/Ubuntu)"
    exit 1
  fi
  log "installing PostgreSQL from the distribution's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends postgresql >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q --no-install-recommends postgresql >/dev/null; }
  bin=$(find_bin) || { log "PostgreSQL installed but initdb not found"; exit 1; }
fi
command -v psql >/dev/null 2>&1 || PATH="$bin:$PATH"

# PostgreSQL refuses to run as root: run the server as the 'postgres' account when we are root.
as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || useradd --system --home-dir "$root" --shell /bin/sh postgres
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

mkdir -p "$root"
[ "$(id -u)" -eq 0 ] && chown postgres "$root" 2>/dev/null || true
data="$root/data"
if [ ! -s "$data/PG_VERSION" ]; then
  log "initialising a cluster in $data"
  as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-sync >/dev/null
fi

psql_admin() { psql -h 127.0.0.1 -p "$port" -U postgres -d postgres -Atqc "$1"; }
if ! as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
  log "starting the server on 127.0.0.1:$port"
  if ! as_owner "$bin/pg_ctl" -D "$data" -l "$root/server.log" -w -t 30 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $root -c fsync=off -c max_connections=100" start >/dev/null; then
    # the port is probably taken by the distribution's own cluster (apt starts one): use it
    # through its local socket as the postgres account
    sock=/var/run/postgresql
    if [ "$(id -u)" -eq 0 ] && [ -S "$sock/.s.PGSQL.$port" ]; then
      log "port $port is taken by another PostgreSQL; creating the role and database there"
      psql_admin() { runuser -u postgres -- psql -h "$sock" -p "$port" -d postgres -Atqc "$1"; }
    else
      log "cannot start PostgreSQL on port $port (see $root/server.log)"
      exit 1
    fi
  fi
fi

# Role and database (trust auth for the local superuser; password set for TCP clients).
if [ -z "$(psql_admin "select 1 from pg_roles where rolname = '$user'")" ]; then
  psql_admin "create role \"$user\" login password '$password'" >/dev/null
fi
if [ -z "$(psql_admin "select 1 from pg_database where datname = '$db'")" ]; then
  psql_admin "create database \"$db\" owner \"$user\"" >/dev/null
fi

ready || { log "server started but $url does not answer (see $root/server.log)"; exit 1; }
echo "$url"
