#!/usr/bin/env bash
# Installs and starts the services the tests need (PostgreSQL, a Kafka-protocol
# broker, ClickHouse; headless Chromium and the official Elasticsearch Python
# client, which only need installing), idempotently, on 127.0.0.1.
#
#   scripts/services.sh up   [NAME...]   install if missing, start if stopped
#   scripts/services.sh down [NAME...]   stop
#   scripts/services.sh env  [NAME...]   print `export VAR=...` lines for the tests
#
# Each service is a script in scripts/services/NAME.sh taking the same verbs.
# Binaries and downloads are cached under ${XDG_CACHE_HOME:-$HOME/.cache}/sluice,
# run-time state lives under ${SLUICE_SERVICES_DIR:-/tmp/sluice-services}.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
verb="${1:-}"
case "$verb" in
  up | down | env) shift ;;
  *) echo "usage: $0 up|down|env [NAME...]" >&2; exit 2 ;;
esac

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in "$here"/services/*.sh; do
    [ -e "$f" ] || continue
    names+=("$(basename "$f" .sh)")
  done
fi

for name in "${names[@]+"${names[@]}"}"; do
  script="$here/services/$name.sh"
  if [ ! -x "$script" ]; then
    echo "services: no service named '$name' (no executable $script)" >&2
    exit 2
  fi
  if [ "$verb" = env ]; then
    "$script" env
  else
    echo "services: $verb $name" >&2
    "$script" "$verb" >&2
  fi
done
