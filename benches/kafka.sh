#!/usr/bin/env bash
# Kafka throughput, sluice beside a plain librdkafka client on the same broker
# in one run.
#
#   benches/kafka.sh [EVENTS]      (default 500000)
#
# Produce: `sluice run` (generator apache_common -> memory -> kafka sink,
# idempotent, acks=all, lz4) versus kafka/examples/plain.rs producing the
# same number of lines of the same shape with the same settings.
# Consume: `sluice run` (kafka source -> memory -> file sink, text) versus the
# plain consumer writing each value and a newline to a file. Each reads a
# 6-partition topic of EVENTS records; the time runs from the first record
# written to the last, so the group join is not counted.
# Uses the broker of scripts/services/kafka.sh (started when needed).
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-500000}
export RUSTC_WRAPPER=${RUSTC_WRAPPER:-}
cargo build --release --quiet --bin sluice
cargo build --release --quiet -p sluice-kafka --example plain
BIN=$PWD/target/release/sluice
PLAIN=$PWD/target/release/examples/plain
scripts/services/kafka.sh up
eval "$(scripts/services/kafka.sh env)"
B=$SLUICE_TEST_KAFKA_BROKERS
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
run_id=$(date +%s)-$$
for t in sluice plain; do
  "$PLAIN" create "$B" "bench-$t-$run_id" 6
done

row() { # name, events, bytes, seconds
  awk -v n="$1" -v e="$2" -v b="$3" -v s="$4" \
    'BEGIN { if (s == 0) s = 0.001; printf "| %s | %d | %.2f | %.0f | %.1f |\n", n, e, s, e/s, b/1048576/s }'
}

now() { date +%s.%N; }

echo "| run | events | seconds | events/s | MiB/s |"
echo "|---|---|---|---|---|"

# Produce.
cat >"$WORK/produce.yaml" <<YAML
sources:
  gen: {type: generator, count: $EVENTS, format: apache_common, batch_size: 5000, channels: [main]}
channels:
  main: {type: memory, capacity: 50000}
sinks:
  k: {type: kafka, channel: main, batch_size: 10000, brokers: "$B", topic: bench-sluice-$run_id}
YAML
start=$(now)
"$BIN" run "$WORK/produce.yaml" --log-level warn
end=$(now)
secs=$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')
# The generator's apache lines average about the plain client's length.
read -r n bytes psecs < <("$PLAIN" produce "$B" "bench-plain-$run_id" "$EVENTS")
row "produce: sluice (generator -> kafka sink)" "$EVENTS" "$bytes" "$secs"
row "produce: plain librdkafka" "$n" "$bytes" "$psecs"

# Consume.
cat >"$WORK/consume.yaml" <<YAML
sources:
  k: {type: kafka, brokers: "$B", topics: [bench-sluice-$run_id], group_id: bench-$run_id, batch_size: 5000, metadata: false, channels: [main]}
channels:
  main: {type: memory, capacity: 50000}
sinks:
  out: {type: file, channel: main, path: $WORK/sluice.out}
YAML
"$BIN" run "$WORK/consume.yaml" --log-level warn &
pid=$!
# Timed from the first record written, as the plain consumer is.
until [ -s "$WORK/sluice.out" ]; do
  kill -0 $pid || { echo "sluice stopped early" >&2; exit 1; }
  sleep 0.01
done
start=$(now)
while [ "$(wc -l < "$WORK/sluice.out" 2>/dev/null || echo 0)" -lt "$EVENTS" ]; do
  kill -0 $pid || { echo "sluice stopped early" >&2; exit 1; }
  sleep 0.05
done
end=$(now)
kill -TERM $pid; wait $pid
secs=$(awk -v s="$start" -v e="$end" 'BEGIN { print e - s }')
sbytes=$(( $(stat -c %s "$WORK/sluice.out") - EVENTS ))
read -r n pbytes psecs < <("$PLAIN" consume "$B" "bench-plain-$run_id" "bench-plain-$run_id" "$EVENTS" "$WORK/plain.out")
row "consume: sluice (kafka source -> file sink)" "$EVENTS" "$sbytes" "$secs"
row "consume: plain librdkafka (-> file)" "$n" "$pbytes" "$psecs"
