#!/usr/bin/env bash
# The tiered demo without docker: two edge agents tail generated log files
# into a Kafka topic on a local broker, one aggregator reads the topic in a
# consumer group and writes one JSON file per edge and aggregator.
#
#   SLUICE_BIN     the sluice binary (default: target/release/sluice)
#   KAFKA_BROKERS  the broker (default: 127.0.0.1:19092, the one that
#                  scripts/services/kafka.sh starts)
#   DEMO_EVENTS    lines per edge (default: 100000)
#   DEMO_DIR       where logs, state and output go (default: ./kafka-tiered-run)
#   DEMO_TOPIC     the topic (default: a new one per run)
#
# Exits 0 once the aggregator has written every line of both edges.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="${SLUICE_BIN:-$repo/target/release/sluice}"
export KAFKA_BROKERS="${KAFKA_BROKERS:-127.0.0.1:19092}"
events="${DEMO_EVENTS:-100000}"
dir="${DEMO_DIR:-$PWD/kafka-tiered-run}"
export DEMO_TOPIC="${DEMO_TOPIC:-sluice-demo-$(date +%s)-$$}"
export GROUP="aggregators-$DEMO_TOPIC"

[ -x "$bin" ] || { echo "no sluice binary at $bin (set SLUICE_BIN or cargo build --release)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"

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

# The aggregator joins its group first, then the edges ship their files.
OUT_DIR="$dir/out/aggregator" DATA_DIR="$dir/state/aggregator" \
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
  got=$({ cat "$dir"/out/aggregator/*.json 2>/dev/null || true; } | wc -l)
  [ "$got" -ge "$want" ] && break
  kill -0 "$agg" 2>/dev/null || { echo "the aggregator stopped:" >&2; cat "$dir/aggregator.log" >&2; exit 1; }
  sleep 0.1
done
kill -TERM "$agg"
wait "$agg" || { echo "the aggregator failed:" >&2; cat "$dir/aggregator.log" >&2; exit 1; }
pids=()
echo "aggregator wrote $got of $want lines:"
wc -l "$dir"/out/aggregator/*.json
[ "$got" -ge "$want" ]
