#!/usr/bin/env bash
# PostgreSQL for the tests: the Debian package's server, run from a data
# directory under ${SLUICE_SERVICES_DIR:-/tmp/sluice-services}/pg on
# 127.0.0.1:${SLUICE_PG_PORT:-55432}, trust authentication, as the `postgres`
# user (the server refuses to run as root).
#
#   postgres.sh up     install when missing, initdb once, start when stopped
#   postgres.sh down   stop
#   postgres.sh env    SLUICE_TEST_POSTGRES_URL, and SLUICE_TEST_POSTGRES_CTL
#                      (a command taking `restart`, `stop` or `start`) for
#                      the test that restarts the database mid-stream
set -euo pipefail

state="${SLUICE_SERVICES_DIR:-/tmp/sluice-services}"
data="$state/pg"
port="${SLUICE_PG_PORT:-55432}"
log="$state/pg.log"
here="$(cd "$(dirname "$0")" && pwd)"

bindir() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
      echo "$d"
    fi
  done | sort -V | tail -n 1
}

install() {
  if [ -n "$(bindir)" ]; then
    return
  fi
  echo "postgres: installing the Debian package" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends postgresql >&2; then
    apt-get update >&2
    apt-get install -y --no-install-recommends postgresql >&2
  fi
  if [ -z "$(bindir)" ]; then
    echo "postgres: no initdb/pg_ctl under /usr/lib/postgresql/*/bin after installing" >&2
    exit 1
  fi
}

# Runs a command as the `postgres` user when we are root.
as_pg() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null; then
      runuser -u postgres -- "$@"
    else
      su postgres -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

ensure_user() {
  if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
    useradd --system --home-dir /var/lib/postgresql --shell /bin/sh postgres
  fi
}

ctl() {
  local bin
  bin="$(bindir)"
  as_pg "$bin/pg_ctl" -D "$data" -l "$log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $data -c fsync=on" "$@"
}

running() {
  local bin
  bin="$(bindir)"
  [ -n "$bin" ] && [ -f "$data/PG_VERSION" ] && as_pg "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1
}

up() {
  install
  ensure_user
  mkdir -p "$state"
  local bin
  bin="$(bindir)"
  if [ ! -f "$data/PG_VERSION" ]; then
    rm -rf "$data"
    mkdir -p "$data"
    chmod 700 "$data"
    if [ "$(id -u)" -eq 0 ]; then
      chown postgres "$data"
    fi
    as_pg "$bin/initdb" -D "$data" -U postgres --auth=trust --encoding=UTF8 --no-locale >/dev/null
  fi
  touch "$log"
  if [ "$(id -u)" -eq 0 ]; then
    chown postgres "$log"
  fi
  if ! running; then
    ctl start >/dev/null
  fi
  # Bounded wait until it answers queries.
  for _ in $(seq 1 60); do
    if "$bin/pg_isready" -h 127.0.0.1 -p "$port" -U postgres >/dev/null 2>&1; then
      echo "postgres: ready on 127.0.0.1:$port" >&2
      return
    fi
    sleep 1
  done
  echo "postgres: not answering on 127.0.0.1:$port after 60s; see $log" >&2
  exit 1
}

down() {
  if running; then
    ctl stop -m fast >/dev/null
  fi
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  # Used by the tests: restarts the server the tests use.
  ctl)
    shift
    case "${1:-}" in
      stop | restart) ctl "$@" -m fast >/dev/null ;;
      start) ctl start >/dev/null ;;
      *) echo "usage: $0 ctl start|stop|restart" >&2; exit 2 ;;
    esac
    ;;
  env)
    echo "export SLUICE_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:$port/postgres"
    echo "export SLUICE_TEST_POSTGRES_CTL=\"$here/postgres.sh ctl\""
    ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
