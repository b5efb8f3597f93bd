#!/usr/bin/env bash
# A Kafka-protocol broker for the tests: nisshi (a Kafka-compatible broker in
# Rust) with SQLite storage, listening on 127.0.0.1 only.
#
#   kafka.sh up        build/install when missing (cached), start when stopped,
#                      wait until the port answers
#   kafka.sh down      stop it
#   kafka.sh env       print the variables the tests read
#   kafka.sh restart   stop and start again, keeping the stored records
#
# The build is cached under ${XDG_CACHE_HOME:-$HOME/.cache}/sluice/nisshi-0.8.1;
# state (database, log, pid file) lives under
# ${SLUICE_SERVICES_DIR:-/tmp/sluice-services}/kafka.
set -euo pipefail

version=0.8.1
port="${SLUICE_KAFKA_PORT:-19092}"
cache="${XDG_CACHE_HOME:-$HOME/.cache}/sluice"
root="$cache/nisshi-$version"
bin="$root/bin/nisshi"
state="${SLUICE_SERVICES_DIR:-/tmp/sluice-services}/kafka"
pidfile="$state/nisshi.pid"
logfile="$state/nisshi.log"
self="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

log() { echo "kafka: $*" >&2; }

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
}

install() {
  [ -x "$bin" ] && return 0
  mkdir -p "$root"
  local tmp
  tmp="$(mktemp -d)"
  log "building nisshi $version into $root (takes 10-20 minutes on 2 cores)"
  # A dependency declares a newer rust-version than it needs; the build works
  # with the installed toolchain.
  if ! CARGO_TARGET_DIR="$tmp/target" RUSTC_WRAPPER= nice -n 10 \
    cargo install nisshi --version "$version" --locked --ignore-rust-version \
    --no-default-features --features dynostore,libsql --root "$root" \
    >"$tmp/build.log" 2>&1; then
    tail -n 40 "$tmp/build.log" >&2
    log "building nisshi failed (full log in $tmp/build.log)"
    exit 1
  fi
  rm -rf "$tmp"
}

start() {
  install
  if running; then
    return 0
  fi
  mkdir -p "$state"
  log "starting on 127.0.0.1:$port"
  (
    cd "$state"
    exec "$bin" broker \
      --listener-url "tcp://127.0.0.1:$port" \
      --advertised-listener-url "tcp://127.0.0.1:$port" \
      --storage-engine "sqlite://nisshi.db" \
      >>"$logfile" 2>&1 </dev/null &
    echo $! >"$pidfile"
  )
  local i
  for i in $(seq 1 300); do
    if port_open; then
      log "ready"
      return 0
    fi
    if ! running; then
      tail -n 40 "$logfile" >&2
      log "broker exited during start (log: $logfile)"
      exit 1
    fi
    sleep 0.1
  done
  tail -n 40 "$logfile" >&2
  log "broker did not answer on 127.0.0.1:$port within 30 s"
  exit 1
}

stop() {
  if running; then
    local pid
    pid="$(cat "$pidfile")"
    # A stopped (SIGSTOP) broker must be continued to see the TERM.
    kill -CONT "$pid" 2>/dev/null || true
    kill "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

case "${1:-}" in
  up) start ;;
  down) stop ;;
  restart) stop; start ;;
  env)
    echo "export SLUICE_TEST_KAFKA_BROKERS=127.0.0.1:$port"
    echo "export SLUICE_TEST_KAFKA_PIDFILE=$pidfile"
    echo "export SLUICE_TEST_KAFKA_RESTART='$self restart'"
    ;;
  *) echo "usage: $0 up|down|env|restart" >&2; exit 2 ;;
esac
