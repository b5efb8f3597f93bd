#!/usr/bin/env bash
# The clickhouse sink beside the server's own ceiling, in one run.
#
#   benches/clickhouse.sh [EVENTS]    (default 1000000)
#
# Generated apache_common lines parsed by parse_regex (6 captures, 2 typed)
# into
#   - the null sink (baseline: the same pipeline with no destination),
#   - the clickhouse sink (batches of 10000; gzip, then plain bodies),
# and, for the same rows,
#   - the server's HTTP ingest alone: the rows the sink stored, exported as
#     JSONEachRow and POSTed back in one request by curl (no agent),
#   - the server's ceiling: one INSERT ... SELECT inside the server (no
#     client, no network, no parsing).
#
# ClickHouse: $SLUICE_TEST_CLICKHOUSE_URL, else scripts/services/clickhouse.sh
# is started. Prints Markdown.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
EVENTS=${1:-1000000}
bench_build --bin sluice
bench_workdir
if [ -z "${SLUICE_TEST_CLICKHOUSE_URL:-}" ]; then
  scripts/services/clickhouse.sh up
  eval "$(scripts/services/clickhouse.sh env)"
fi
CH=$SLUICE_TEST_CLICKHOUSE_URL
TABLE=bench_$$
sql() { curl -sS --fail-with-body "$CH/" --data-binary "$1"; }
cols="client String, user String, method String, path String, status UInt16, size UInt64, timestamp DateTime, message String"
for t in "$TABLE" "${TABLE}_http" "${TABLE}_ceiling"; do
  sql "CREATE TABLE $t ($cols) ENGINE = MergeTree() ORDER BY timestamp"
done
trap 'for t in "$TABLE" "${TABLE}_http" "${TABLE}_ceiling"; do sql "DROP TABLE IF EXISTS $t" || true; done; bench_cleanup' EXIT

pipeline() { # file, sink yaml
  cat > "$1" <<YAML
data_dir: $WORK/.sluice
sources:
  gen: {type: generator, count: $EVENTS, format: apache_common, batch_size: 5000, processors: [parse], channels: [main]}
processors:
  parse:
    type: parse_regex
    pattern: '^(?P<client>\\S+) \\S+ (?P<user>\\S+) \\[[^\\]]+\\] "(?P<method>\\S+) (?P<path>\\S+) [^"]*" (?P<status>\\d{3}) (?P<size>\\d+|-)\$'
    types: {status: integer, size: integer}
channels:
  main: {type: memory, capacity: 40000}
sinks:
  out:
$2
YAML
}

seconds() { awk -v s="$1" -v e="$2" 'BEGIN { print e - s }'; }
row() { # label, seconds, peak RSS KiB or -
  awk -v l="$1" -v s="$2" -v n="$EVENTS" -v r="$3" \
    'BEGIN { printf "| %s | %.0f | %.2f | %s |\n", l, n/s, s, (r == "-" ? "-" : sprintf("%.1f", r/1024)) }'
}
run() { # label, pipeline file
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$WORK/time" "$BIN" run "$2" --log-level warn
  end=$(date +%s.%N)
  row "$1" "$(seconds "$start" "$end")" "$(cat "$WORK/time")"
}

echo
echo "$EVENTS generated apache_common events, parsed, into ClickHouse $(sql "SELECT version()") on $CH:"
echo
echo "| destination | events/s | seconds | peak RSS MiB |"
echo "|---|---|---|---|"
pipeline "$WORK/null.yaml" '    type: "null"
    channel: main'
run "null (baseline)" "$WORK/null.yaml"
for compression in gzip none; do
  sql "TRUNCATE TABLE $TABLE" 2>/dev/null || { sql "DROP TABLE $TABLE"; sql "CREATE TABLE $TABLE ($cols) ENGINE = MergeTree() ORDER BY timestamp"; }
  pipeline "$WORK/ch.yaml" "    type: clickhouse
    channel: main
    url: $CH
    table: $TABLE
    batch_size: 10000
    compression: $compression
    columns: {client: client, user: user, method: method, path: path, status: status, size: size, timestamp: '@timestamp', message: '@message'}"
  run "clickhouse sink, $compression" "$WORK/ch.yaml"
  rows=$(sql "SELECT count() FROM $TABLE")
  [ "$rows" = "$EVENTS" ] || { echo "the table has $rows rows, not $EVENTS" >&2; exit 1; }
done
# The server's HTTP ingest alone: the same rows as one JSONEachRow body.
sql "SELECT * FROM $TABLE FORMAT JSONEachRow" > "$WORK/rows.json"
start=$(date +%s.%N)
curl -sS --fail-with-body "$CH/?query=INSERT%20INTO%20${TABLE}_http%20FORMAT%20JSONEachRow" --data-binary "@$WORK/rows.json"
end=$(date +%s.%N)
row "curl: one JSONEachRow POST of the same rows ($(du -m "$WORK/rows.json" | cut -f1) MiB)" "$(seconds "$start" "$end")" -
# The ceiling: the same rows produced inside the server.
start=$(date +%s.%N)
sql "INSERT INTO ${TABLE}_ceiling SELECT * FROM $TABLE"
end=$(date +%s.%N)
row "ClickHouse INSERT ... SELECT inside the server (ceiling)" "$(seconds "$start" "$end")" -
