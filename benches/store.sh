#!/usr/bin/env bash
# Store and PostgreSQL benchmarks, each beside a baseline in one run.
#
#   benches/store.sh [INGEST_EVENTS] [QUERY_EVENTS]    (defaults 2000000, 10000000)
#   CAPACITY=N benches/store.sh ...    (the memory channel's capacity, default 20000)
#
# 1. Ingest, events/s and peak RSS: generated apache_common lines parsed by
#    parse_regex (6 captures, 2 typed) into
#      - the null sink (baseline: the same pipeline with no destination),
#      - the store sink (an index commit a second, or sooner when the events
#        waiting for it fill half of the channel),
#      - the same with `dedupe_by` (exactly-once: a delete before each add),
#      - the postgres sink (one transaction per batch of 5000),
#    and PostgreSQL's own ceiling for the same rows: one
#    INSERT ... SELECT FROM generate_series inside the server.
# 2. Query latency, p50/p99, over a store of QUERY_EVENTS events, built once
#    (kept under ${XDG_CACHE_HOME:-$HOME/.cache}/sluice/bench-store-N; its
#    ingest rate is printed when it is built): term, phrase, numeric and time
#    ranges, boolean, counts per minute (store/benches/query.rs).
#
# PostgreSQL: $SLUICE_TEST_POSTGRES_URL, else scripts/services/postgres.sh
# is started. Prints Markdown.
set -euo pipefail
cd "$(dirname "$0")/.."
INGEST=${1:-2000000}
QUERY=${2:-10000000}
cargo build --release --quiet --bin sluice
cargo bench -p sluice-store --bench query --no-run --quiet 2>/dev/null
BIN=$PWD/target/release/sluice
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
if [ -z "${SLUICE_TEST_POSTGRES_URL:-}" ]; then
  scripts/services/postgres.sh up
  eval "$(scripts/services/postgres.sh env)"
fi
PG=$SLUICE_TEST_POSTGRES_URL

pipeline() { # file, events, sink yaml
  cat > "$1" <<YAML
data_dir: $WORK/.sluice
sources:
  gen: {type: generator, count: $2, format: apache_common, batch_size: 5000, processors: [parse], channels: [main]}
processors:
  parse:
    type: parse_regex
    pattern: '^(?P<client>\\S+) \\S+ (?P<user>\\S+) \\[[^\\]]+\\] "(?P<method>\\S+) (?P<path>\\S+) [^"]*" (?P<status>\\d{3}) (?P<size>\\d+|-)\$'
    types: {status: integer, size: integer}
channels:
  main: {type: memory, capacity: ${CAPACITY:-20000}}
sinks:
  out:
$3
YAML
}

rate() { # label, events, pipeline file
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$WORK/time" "$BIN" run "$3" --log-level warn
  end=$(date +%s.%N)
  awk -v l="$1" -v s="$start" -v e="$end" -v n="$2" -v r="$(cat "$WORK/time")" \
    'BEGIN { printf "| %s | %.0f | %.2f | %.1f |\n", l, n/(e-s), e-s, r/1024 }'
}

echo
echo "Ingest, $INGEST generated apache_common events, parsed:"
echo
echo "| destination | events/s | seconds | peak RSS MiB |"
echo "|---|---|---|---|"
pipeline "$WORK/null.yaml" "$INGEST" '    type: "null"
    channel: main'
rate "null (baseline)" "$INGEST" "$WORK/null.yaml"
pipeline "$WORK/store.yaml" "$INGEST" "    type: store
    channel: main
    path: $WORK/store
    batch_size: 10000"
rate "store" "$INGEST" "$WORK/store.yaml"
echo "(store: $(du -sh "$WORK/store" | cut -f1) on disk)" >&2
rm -rf "$WORK/store"
# What exactly-once costs: a delete by identity before every add.
pipeline "$WORK/dedupe.yaml" "$INGEST" "    type: store
    channel: main
    path: $WORK/store
    batch_size: 10000
    dedupe_by: [timestamp, message]"
rate "store, \`dedupe_by: [timestamp, message]\`" "$INGEST" "$WORK/dedupe.yaml"
rm -rf "$WORK/store"
TABLE=bench_$$
psql "$PG" -X -q -c "SET client_min_messages = warning" -c "DROP TABLE IF EXISTS $TABLE"
pipeline "$WORK/pg.yaml" "$INGEST" "    type: postgres
    channel: main
    url: $PG
    table: $TABLE
    batch_size: 5000"
rate "postgres" "$INGEST" "$WORK/pg.yaml"
ROWS=$(psql "$PG" -X -A -t -c "SELECT count(*) FROM $TABLE")
[ "$ROWS" = "$INGEST" ] || { echo "postgres has $ROWS rows, not $INGEST" >&2; exit 1; }
# The database's ceiling: the same number of rows of the same shape,
# produced inside the server (no client, no network, one transaction).
start=$(date +%s.%N)
psql "$PG" -X -q -c "INSERT INTO $TABLE SELECT now(), m.message, m.fields FROM $TABLE m" >/dev/null
end=$(date +%s.%N)
awk -v s="$start" -v e="$end" -v n="$INGEST" \
  'BEGIN { printf "| PostgreSQL INSERT ... SELECT inside the server (ceiling) | %.0f | %.2f | - |\n", n/(e-s), e-s }'
psql "$PG" -X -q -c "DROP TABLE $TABLE"

# Named by the index layout (`version` in sluice-store.json), so a new
# layout builds a new index.
CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/bench-store-v2-$QUERY
if [ ! -f "$CACHE/store/meta.json" ]; then
  rm -rf "$CACHE"
  mkdir -p "$CACHE"
  echo
  echo "Building the query index once ($QUERY events):"
  echo
  echo "| destination | events/s | seconds | peak RSS MiB |"
  echo "|---|---|---|---|"
  pipeline "$WORK/big.yaml" "$QUERY" "    type: store
    channel: main
    path: $CACHE/store
    batch_size: 20000"
  rate "store ($QUERY events)" "$QUERY" "$WORK/big.yaml"
fi
echo
echo "Query latency (store on disk: $(du -sh "$CACHE/store" | cut -f1)):"
echo
cargo bench -p sluice-store --bench query --quiet -- "$CACHE/store" 200
echo
echo "The same through the CLI (process start, index open, one query; 20 runs, p50 ms):"
echo
for q in 'status:404' '"POST /api/v1/orders"' 'size:[1000 TO 1999]'; do
  for i in $(seq 1 20); do
    s=$(date +%s%N); "$BIN" search "$CACHE/store" "$q" --limit 100 >/dev/null; e=$(date +%s%N)
    echo $(( (e - s) / 1000 ))
  done | sort -n | awk -v q="$q" '{ a[NR] = $1 } END { printf "- `%s`: %.1f ms\n", q, a[int(NR/2)+1]/1000 }'
done
