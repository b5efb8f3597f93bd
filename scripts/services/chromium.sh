#!/usr/bin/env bash
# Headless Chromium for the dashboard test (Debian's `chromium` package).
#
#   up    installs it with apt-get when /usr/bin/chromium is missing
#   down  nothing to stop: each test starts its own short-lived browser
#   env   prints SLUICE_TEST_CHROMIUM
set -euo pipefail
bin=/usr/bin/chromium
case "${1:-}" in
  up)
    if [ ! -x "$bin" ]; then
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends chromium >/dev/null
    fi
    "$bin" --version
    ;;
  down) ;;
  env) echo "export SLUICE_TEST_CHROMIUM=$bin" ;;
  *) echo "usage: $0 up|down|env" >&2; exit 2 ;;
esac
