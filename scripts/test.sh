#!/usr/bin/env bash
# The project's test command: starts the services the tests need, then runs
# every test. Extra arguments go to `cargo test` (e.g. a test name filter).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/services.sh up
eval "$(scripts/services.sh env)"
exec cargo test --workspace --locked "$@"
