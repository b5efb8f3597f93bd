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
. "$(dirname "$0")/lib.sh"
N=${1:-10000000}
FORMAT=${2:-sequence}
RUNS=${3:-3}
bench_build
bench_workdir

LABELS=("memory" "disk, sync: always" "disk, sync: interval" "disk, sync: never" "disk, interval, cache_bytes: 0")
CHANNELS=("{type: memory, capacity: 10000}" "{type: disk, sync: always}" "{type: disk, sync: interval}" "{type: disk, sync: never}" "{type: disk, sync: interval, cache_bytes: 0}")

run() { # channel yaml: prints "wall_seconds cpu_seconds rss_mib"
  rm -rf "$WORK/.sluice-p"
  null_pipeline "$WORK/p.yaml" "gen: {type: generator, count: $N, format: $FORMAT, channels: [main]}" "$1"
  timed "$BIN" run "$WORK/p.yaml" --log-level warn
  echo "$SECS $CPU $RSS_MIB"
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
table_head channel seconds "CPU seconds" events/s "peak RSS MiB" "events/s vs memory"
base=${BEST[0]%% *}
for i in "${!LABELS[@]}"; do
  read -r secs cpu rss <<< "${BEST[$i]}"
  table_row "${LABELS[$i]}" "$(fixed2 "$secs")" "$cpu" "$(per_sec "$N" "$secs")" "$rss" \
    "$(awk -v s="$secs" -v b="$base" 'BEGIN { printf "%.0f%%", 100 * b / s }')"
done
