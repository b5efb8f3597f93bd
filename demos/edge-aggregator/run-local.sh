#!/usr/bin/env bash
# The edge-aggregator demo without docker: two aggregators and one edge
# agent on this machine, with the local binary.
#
# The edge sends DEMO_EVENTS events to aggregator-1 (preferred). Halfway,
# aggregator-1 is stopped; the edge fails over to aggregator-2 without
# losing a batch (a batch leaves the edge only once acknowledged). At the
# end every event is in one of the two outputs, and the script says so.
#
#   SLUICE_BIN     the binary (default: target/release/sluice)
#   DEMO_WORK_DIR  where state, outputs and logs go (default: a temp dir)
#   PORT_1 PORT_2  the aggregators' ports (default: 16001, 16002)
#   DEMO_EVENTS    how many events (default: 50000)
#   DEMO_RATE      events per second at the edge (default: 20000)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
bin=${SLUICE_BIN:-$root/target/release/sluice}
work=${DEMO_WORK_DIR:-$(mktemp -d)}
port_1=${PORT_1:-16001}
port_2=${PORT_2:-16002}
export DEMO_EVENTS=${DEMO_EVENTS:-50000}
export DEMO_RATE=${DEMO_RATE:-20000}
export HOP_TOKEN=${HOP_TOKEN:-demo-token-change-me}
export DATA_DIR=$work/state
export OUT_DIR=$work/out

if [ ! -x "$bin" ]; then
  echo "no sluice binary at $bin: build it (cargo build --release) or set SLUICE_BIN" >&2
  exit 2
fi
mkdir -p "$work" "$OUT_DIR"
cd "$work"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

listening() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

wait_until() { # what, seconds, command...
  local what=$1 limit=$2
  shift 2
  local start=$SECONDS
  until "$@"; do
    if (( SECONDS - start > limit )); then
      echo "timed out waiting for $what" >&2
      exit 1
    fi
    sleep 0.1
  done
}

lines() {
  if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi
}

NAME=aggregator-1 LISTEN=127.0.0.1:$port_1 "$bin" run "$here/pipelines/aggregator.yaml" 2> aggregator-1.log &
agg_1=$!
pids+=("$agg_1")
NAME=aggregator-2 LISTEN=127.0.0.1:$port_2 "$bin" run "$here/pipelines/aggregator.yaml" 2> aggregator-2.log &
agg_2=$!
pids+=("$agg_2")
wait_until "aggregator-1 to listen" 30 listening "$port_1"
wait_until "aggregator-2 to listen" 30 listening "$port_2"

AGGREGATOR_1=127.0.0.1:$port_1 AGGREGATOR_2=127.0.0.1:$port_2 \
  "$bin" run "$here/pipelines/edge.yaml" 2> edge.log &
edge=$!
pids+=("$edge")

half=$(( DEMO_EVENTS / 2 ))
half_way() { [ "$(lines "$OUT_DIR/aggregator-1.json")" -ge "$half" ]; }
wait_until "half the events at aggregator-1" 120 half_way
echo "aggregator-1 has $(lines "$OUT_DIR/aggregator-1.json") events: stopping it"
kill -TERM "$agg_1"
wait "$agg_1" || true

# The edge's run is bounded: it ends once every event was acknowledged.
wait "$edge"
kill -TERM "$agg_2"
wait "$agg_2" || true

n_1=$(lines "$OUT_DIR/aggregator-1.json")
n_2=$(lines "$OUT_DIR/aggregator-2.json")
distinct=$(cat "$OUT_DIR"/aggregator-*.json | grep -o '"seq":[0-9]*' | sort -u | wc -l)
echo "aggregator-1: $n_1 events, aggregator-2: $n_2 events, distinct: $distinct of $DEMO_EVENTS"
echo "outputs in $OUT_DIR"
if [ "$distinct" -ne "$DEMO_EVENTS" ] || [ "$n_2" -eq 0 ]; then
  echo "FAILED: events missing, or no failover" >&2
  exit 1
fi
echo "ok: nothing lost across the failover"
