#!/usr/bin/env bash
# ClickHouse for the tests: the Debian package's server (18.16, the oldest
# release the `clickhouse` sink supports), run from a directory under
# ${SLUICE_SERVICES_DIR:-/tmp/sluice-services}/clickhouse with its own
# config, HTTP on 127.0.0.1:${SLUICE_CLICKHOUSE_PORT:-18123} (native
# protocol on the next port, used only by the Distributed table of the
# `sluice_local` cluster), as the `clickhouse` user.
#
# Users: `default` without a password, and `sluice` with the password
# `sluice-test` (for the basic-auth test).
#
#   clickhouse.sh up     install when missing, write the config once, start when stopped
#   clickhouse.sh down   stop
#   clickhouse.sh env    SLUICE_TEST_CLICKHOUSE_URL, and SLUICE_TEST_CLICKHOUSE_CTL
#                        (a command taking `kill`, `stop`, `start` or `restart`)
#                        for the test that kills the server mid-stream
set -euo pipefail

state="${SLUICE_SERVICES_DIR:-/tmp/sluice-services}"
dir="$state/clickhouse"
port="${SLUICE_CLICKHOUSE_PORT:-18123}"
tcp_port="$((port + 1))"
log="$state/clickhouse.log"
pidfile="$dir/server.pid"
here="$(cd "$(dirname "$0")" && pwd)"
server=/usr/sbin/clickhouse-server

install() {
  if [ -x "$server" ]; then
    return
  fi
  echo "clickhouse: installing the Debian package" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y --no-install-recommends clickhouse-server >&2; then
    apt-get update >&2
    apt-get install -y --no-install-recommends clickhouse-server >&2
  fi
  if [ ! -x "$server" ]; then
    echo "clickhouse: no $server after installing" >&2
    exit 1
  fi
}

# Runs a command as the `clickhouse` user when we are root.
as_ch() {
  if [ "$(id -u)" -eq 0 ]; then
    if command -v runuser >/dev/null; then
      runuser -u clickhouse -- "$@"
    else
      su clickhouse -s /bin/sh -c "$(printf '%q ' "$@")"
    fi
  else
    "$@"
  fi
}

ensure_user() {
  if [ "$(id -u)" -eq 0 ] && ! id clickhouse >/dev/null 2>&1; then
    useradd --system --home-dir "$dir" --shell /bin/sh clickhouse
  fi
}

write_config() {
  mkdir -p "$dir/data" "$dir/tmp" "$dir/user_files"
  cat >"$dir/config.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <logger>
        <level>warning</level>
        <log>$log</log>
        <errorlog>$log</errorlog>
        <console>0</console>
    </logger>
    <listen_host>127.0.0.1</listen_host>
    <http_port>$port</http_port>
    <tcp_port>$tcp_port</tcp_port>
    <path>$dir/data/</path>
    <tmp_path>$dir/tmp/</tmp_path>
    <user_files_path>$dir/user_files/</user_files_path>
    <users_config>$dir/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mark_cache_size>268435456</mark_cache_size>
    <uncompressed_cache_size>268435456</uncompressed_cache_size>
    <max_concurrent_queries>100</max_concurrent_queries>
    <keep_alive_timeout>3</keep_alive_timeout>
    <remote_servers>
        <sluice_local>
            <shard><replica><host>127.0.0.1</host><port>$tcp_port</port><default_database>shard1</default_database></replica></shard>
            <shard><replica><host>127.0.0.1</host><port>$tcp_port</port><default_database>shard2</default_database></replica></shard>
        </sluice_local>
    </remote_servers>
</yandex>
XML
  cat >"$dir/users.xml" <<XML
<?xml version="1.0"?>
<yandex>
    <profiles>
        <default><max_memory_usage>2000000000</max_memory_usage></default>
    </profiles>
    <users>
        <default>
            <password></password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </default>
        <sluice>
            <password>sluice-test</password>
            <networks><ip>127.0.0.1</ip><ip>::1</ip></networks>
            <profile>default</profile>
            <quota>default</quota>
        </sluice>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
XML
  if [ "$(id -u)" -eq 0 ]; then
    chown -R clickhouse "$dir"
  fi
}

pid() {
  [ -f "$pidfile" ] && cat "$pidfile"
}

running() {
  local p
  p="$(pid)" || return 1
  [ -n "$p" ] && kill -0 "$p" 2>/dev/null
}

# Whether `GET /ping` answers `Ok.` (bash's /dev/tcp: no HTTP client needed).
answering() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && printf 'GET /ping HTTP/1.0\r\n\r\n' >&3 && cat <&3" \
    2>/dev/null | grep -q '^Ok\.'
}

start() {
  if running; then
    return
  fi
  touch "$log"
  if [ "$(id -u)" -eq 0 ]; then
    chown clickhouse "$log"
  fi
  rm -f "$pidfile"
  # In a session of its own (so that the caller's process group going away
  # does not take it along); the shell writes its pid, which the server
  # then takes over by `exec`, where `stop` finds it.
  local run=(sh -c 'echo $$ >"$1" && exec "$2" --config-file="$3"' sh "$pidfile" "$server" "$dir/config.xml")
  if [ "$(id -u)" -eq 0 ]; then
    run=(runuser -u clickhouse -- "${run[@]}")
  fi
  setsid -f "${run[@]}" >>"$log" 2>&1 </dev/null
  # Bounded wait until it answers.
  for _ in $(seq 1 120); do
    if answering; then
      echo "clickhouse: ready on 127.0.0.1:$port" >&2
      return
    fi
    sleep 0.5
  done
  echo "clickhouse: not answering on 127.0.0.1:$port after 60s; see $log" >&2
  exit 1
}

# Stops the server with `signal` and waits (bounded) until it is gone.
stop() {
  local signal="${1:-TERM}" p
  if ! running; then
    rm -f "$pidfile"
    return
  fi
  p="$(pid)"
  kill "-$signal" "$p" 2>/dev/null || true
  for _ in $(seq 1 120); do
    if ! kill -0 "$p" 2>/dev/null; then
      rm -f "$pidfile"
      return
    fi
    sleep 0.5
  done
  kill -KILL "$p" 2>/dev/null || true
  rm -f "$pidfile"
}

up() {
  install
  ensure_user
  mkdir -p "$state" "$dir"
  # Written at every `up`: a running server picks up a changed cluster.
  write_config
  start
}

case "${1:-}" in
  up) up ;;
  down) stop TERM ;;
  # Used by the tests: stops (or kills) and starts the server the tests use.
  ctl)
    shift
    case "${1:-}" in
      kill) stop KILL ;;
      stop) stop TERM ;;
      start) start ;;
      restart) stop TERM; start ;;
      *) echo "usage: $0 ctl kill|stop|start|restart" >&2; exit 2 ;;
    esac
    ;;
  env)
    echo "export SLUICE_TEST_CLICKHOUSE_URL=http://127.0.0.1:$port"
    echo "export SLUICE_TEST_CLICKHOUSE_CTL=\"$here/clickhouse.sh ctl\""
    ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
