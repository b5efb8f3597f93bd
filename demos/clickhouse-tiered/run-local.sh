#!/usr/bin/env bash
# The ClickHouse tiered demo without docker: two edge agents ship generated
# log files into a Kafka topic on a local broker, one aggregator reads the
# topic in a consumer group and inserts into a Distributed table over the
# `sluice_local` cluster of the local ClickHouse (two shards, each a database
# of that one server: see scripts/services/clickhouse.sh).
#
#   SLUICE_BIN       the sluice binary (default: target/release/sluice)
#   KAFKA_BROKERS    the broker (default: 127.0.0.1:19092, scripts/services/kafka.sh)
#   CLICKHOUSE_URL   the server (default: http://127.0.0.1:18123, scripts/services/clickhouse.sh)
#   DEMO_EVENTS      lines per edge (default: 100000)
#   DEMO_DIR         where logs, state and output go (default: ./clickhouse-tiered-run)
#   DEMO_TOPIC       the topic (default: a new one per run)
#
# Exits 0 once the Distributed table holds every line of both edges, each
# once, spread over both shards.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${SLUICE_BIN:-$repo/target/release/sluice}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:19092}"
export CLICKHOUSE_URL="${CLICKHOUSE_URL:-http://127.0.0.1:18123}"
events="${DEMO_EVENTS:-100000}"
dir="${DEMO_DIR:-$PWD/clickhouse-tiered-run}"
export DEMO_TOPIC="${DEMO_TOPIC:-sluice-ch-demo-$(date +%s)-$$}"
export GROUP="aggregators-$DEMO_TOPIC"
# A table of this run's own.
table="logs_$(echo "$DEMO_TOPIC" | tr -c 'a-zA-Z0-9_\n' _)"
export CLICKHOUSE_TABLE="default.$table"

[ -x "$bin" ] || { echo "no sluice binary at $bin (set SLUICE_BIN or cargo build --release)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"

sql() {
  curl -sS --fail-with-body "$CLICKHOUSE_URL/" --data-binary "$1"
}

# The shards' tables and the Distributed table over them: init.sql of the
# docker demo, on the local cluster.
for shard in shard1 shard2; do
  sql "CREATE DATABASE IF NOT EXISTS $shard"
  sql "CREATE TABLE IF NOT EXISTS $shard.${table}_local
       (timestamp DateTime, edge String, level String, seq UInt64, message String)
       ENGINE = MergeTree() PARTITION BY toYYYYMMDD(timestamp) ORDER BY (edge, timestamp)"
done
sql "CREATE TABLE IF NOT EXISTS default.$table AS shard1.${table}_local
     ENGINE = Distributed(sluice_local, '', ${table}_local, rand())"

# The application logs of two machines.
for edge in a b; do
  mkdir -p "logs/$edge"
  awk -v n="$events" -v e="$edge" 'BEGIN {
    split("info info info debug warn error", lv, " ")
    for (i = 0; i < n; i++) printf "seq=%d level=%s edge %s handled request %d\n", i, lv[i % 6 + 1], e, i
  }' >"logs/$edge/app.log"
done

pids=()
cleanup() {
  for p in "${pids[@]+"${pids[@]}"}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

OUT_DIR="$dir/out" DATA_DIR="$dir/state/aggregator" \
  "$bin" run "$here/pipelines/aggregator.yaml" 2>"$dir/aggregator.log" &
agg=$!
pids+=("$agg")

for edge in a b; do
  EDGE="$edge" LOG_DIR="$dir/logs/$edge" FOLLOW=false DATA_DIR="$dir/state/edge-$edge" \
    "$bin" run "$here/pipelines/edge.yaml" 2>"$dir/edge-$edge.log" &
  pids+=("$!")
done
for p in "${pids[@]:1}"; do
  wait "$p" || { echo "an edge agent failed:" >&2; cat "$dir"/edge-*.log >&2; exit 1; }
done

want=$((2 * events))
got=0
for _ in $(seq 1 1200); do
  got=$(sql "SELECT count() FROM default.$table")
  [ "$got" -ge "$want" ] && break
  kill -0 "$agg" 2>/dev/null || { echo "the aggregator stopped:" >&2; cat "$dir/aggregator.log" >&2; exit 1; }
  sleep 0.1
done
kill -TERM "$agg"
wait "$agg" || { echo "the aggregator failed:" >&2; cat "$dir/aggregator.log" >&2; exit 1; }
pids=()
echo "the Distributed table holds $got of $want rows:"
sql "SELECT edge, count(), uniqExact(seq) FROM default.$table GROUP BY edge ORDER BY edge FORMAT PrettyCompactNoEscapes"
echo "per shard: $(sql "SELECT count() FROM shard1.${table}_local") + $(sql "SELECT count() FROM shard2.${table}_local")"
unique=$(sql "SELECT uniqExact(edge, seq) FROM default.$table")
[ "$got" -ge "$want" ] && [ "$unique" -eq "$want" ]
