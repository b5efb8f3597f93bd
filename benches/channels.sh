#!/usr/bin/env bash
# Channel throughput: the same pipeline with a `memory` channel (baseline)
# and with a `disk` channel per sync policy, in one run.
#
#   benches/channels.sh [EVENTS] [FORMAT]     (default 10000000 sequence)
#
# Pipeline: generator (FORMAT, batches of 1000) -> channel -> null sink.
# Prints events/s, MiB/s of bodies, peak RSS and the ratio to memory as a
# Markdown table. Works in a temporary directory (the disk channel writes
# there: put it on the disk you care about with TMPDIR=...).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
FORMAT=${2:-sequence}
cargo build --release --quiet
BIN=$PWD/target/release/sluice
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

run() { # label, channel yaml: prints "seconds rss_kib"
  rm -rf "$WORK/.sluice"
  cat > "$WORK/p.yaml" <<YAML
data_dir: $WORK/.sluice
sources:
  gen: {type: generator, count: $N, format: $FORMAT, channels: [c]}
channels:
  c: $2
sinks:
  out: {type: "null", channel: c}
YAML
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$WORK/time" "$BIN" run "$WORK/p.yaml" --log-level warn
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }'
  echo " $(cat "$WORK/time")"
}

echo "generator ($FORMAT) -> channel -> null, $N events, $(nproc) cores"
echo
echo "| channel | seconds | events/s | peak RSS MiB | vs memory |"
echo "|---|---|---|---|---|"
base=""
for spec in \
  "memory|{type: memory, capacity: 10000}" \
  "disk, sync: always|{type: disk, sync: always}" \
  "disk, sync: interval|{type: disk, sync: interval}" \
  "disk, sync: never|{type: disk, sync: never}" \
  "disk, interval, no cache|{type: disk, sync: interval, cache_bytes: 0}"; do
  label=${spec%%|*}
  yaml=${spec#*|}
  read -r secs rss < <(run "$label" "$yaml")
  [ -z "$base" ] && base=$secs
  awk -v l="$label" -v s="$secs" -v r="$rss" -v n="$N" -v b="$base" \
    'BEGIN { printf "| %s | %.2f | %.0f | %.1f | %.0f%% |\n", l, s, n/s, r/1024, 100*b/s }'
done
