#!/usr/bin/env bash
# Channel throughput: the same pipeline with a `memory` channel (baseline)
# and with a `disk` channel per sync policy, in one run.
#
#   benches/channels.sh [EVENTS] [FORMAT] [RUNS]   (default 10000000 sequence 3)
#
# Pipeline: generator (FORMAT, batches of 1000) -> channel -> null sink.
# Each configuration runs RUNS times, interleaved; the table shows the best
# wall time (the least disturbed by other load) with its CPU time (user +
# system), peak RSS, events/s and the ratio of events/s to memory's.
# Works in a temporary directory: the disk channel writes there (choose the
# disk with TMPDIR=...).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-10000000}
FORMAT=${2:-sequence}
RUNS=${3:-3}
cargo build --release --quiet
BIN=$PWD/target/release/sluice
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

LABELS=("memory" "disk, sync: always" "disk, sync: interval" "disk, sync: never" "disk, interval, cache_bytes: 0")
CHANNELS=("{type: memory, capacity: 10000}" "{type: disk, sync: always}" "{type: disk, sync: interval}" "{type: disk, sync: never}" "{type: disk, sync: interval, cache_bytes: 0}")

run() { # channel yaml: prints "wall_seconds cpu_seconds rss_kib"
  rm -rf "$WORK/.sluice"
  cat > "$WORK/p.yaml" <<YAML
data_dir: $WORK/.sluice
sources:
  gen: {type: generator, count: $N, format: $FORMAT, channels: [c]}
channels:
  c: $1
sinks:
  out: {type: "null", channel: c}
YAML
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%U %S %M" -o "$WORK/time" "$BIN" run "$WORK/p.yaml" --log-level warn
  end=$(date +%s.%N)
  read -r user sys rss < "$WORK/time"
  awk -v s="$start" -v e="$end" -v u="$user" -v y="$sys" -v r="$rss" \
    'BEGIN { printf "%.3f %.2f %d\n", e - s, u + y, r }'
}

declare -A BEST
for ((r = 0; r < RUNS; r++)); do
  for i in "${!LABELS[@]}"; do
    out=$(run "${CHANNELS[$i]}")
    prev=${BEST[$i]:-}
    if [ -z "$prev" ] || awk -v a="${out%% *}" -v b="${prev%% *}" 'BEGIN { exit !(a < b) }'; then
      BEST[$i]=$out
    fi
  done
done

echo "generator ($FORMAT) -> channel -> null, $N events, best of $RUNS, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| channel | seconds | CPU seconds | events/s | peak RSS MiB | events/s vs memory |"
echo "|---|---|---|---|---|---|"
base=${BEST[0]%% *}
for i in "${!LABELS[@]}"; do
  read -r secs cpu rss <<< "${BEST[$i]}"
  awk -v l="${LABELS[$i]}" -v s="$secs" -v c="$cpu" -v r="$rss" -v n="$N" -v b="$base" \
    'BEGIN { printf "| %s | %.2f | %.2f | %.0f | %.1f | %.0f%% |\n", l, s, c, n/s, r/1024, 100*b/s }'
done
