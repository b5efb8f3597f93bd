#!/usr/bin/env bash
# Throughput benchmarks, sluice beside a physical baseline in one run.
#
#   benches/throughput.sh [SIZE_MIB] [RUNS]      (default 1024 1)
#   BASE=/path/to/older/sluice benches/throughput.sh ...
#
# 1. file -> file passthrough of a generated log of ~160-byte lines:
#    `cat in > out` versus `sluice run` (file source, follow: false ->
#    memory channel -> file sink, text).
# 2. file -> parse_regex -> file: a log of 159-byte Apache combined lines,
#    `parse_regex` with 11 named captures (status typed integer), written as
#    flat JSON; with `workers: 1` (the chain on one thread) and the default
#    `auto` (batches split over the cores when worth it).
# 3. generator -> parse_regex -> filter -> null, and generator -> null:
#    events/s.
# The file rows show the best wall time of RUNS runs with its CPU seconds
# (user + system: less disturbed by other load than wall time), CPU seconds
# per GiB of input, MiB/s, events/s and peak RSS. With BASE set (an older
# build, e.g. copied aside before a change), every sluice row is also run
# with it, interleaved with the new binary, so that both meet the same load.
# Works in a temporary directory; prints Markdown tables.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIZE_MIB=${1:-1024}
RUNS=${2:-1}
bench_build
bench_workdir
gen_log "$WORK/in.log" "$SIZE_MIB"
PLAIN_LINES=$LINES PLAIN_BYTES=$BYTES
gen_combined "$WORK/combined.log" "$SIZE_MIB"
COMBINED_LINES=$LINES COMBINED_BYTES=$BYTES
sync

BINS=("$BIN")
NAMES=("sluice")
if [ -n "${BASE:-}" ]; then
  BINS=("$BASE" "$BIN")
  NAMES=("sluice (BASE)" "sluice")
fi

# best NAME CHECK COMMAND...: runs COMMAND RUNS times, keeps the fastest,
# runs CHECK (a shell snippet) after each run; prints one table row.
best() {
  local name=$1 check=$2
  shift 2
  local best_secs="" best_cpu="" best_rss=""
  for ((r = 0; r < RUNS; r++)); do
    timed "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
    eval "$check"
    if [ -z "$best_secs" ] || awk -v a="$ELAPSED" -v b="$best_secs" 'BEGIN { exit !(a < b) }'; then
      best_secs=$ELAPSED best_cpu=$CPU best_rss=$RSS_MIB
    fi
  done
  local secs
  secs=$(awk -v s="$best_secs" 'BEGIN { print (s == 0 ? 0.01 : s) }')
  table_row "$name" "$(fixed2 "$secs")" "$best_cpu" \
    "$(awk -v c="$best_cpu" -v b="$BYTES" 'BEGIN { printf "%.2f", c / (b / 1073741824) }')" \
    "$(mib_per_sec "$BYTES" "$secs")" "$(per_sec "$LINES" "$secs")" "$best_rss"
}

rate() { # label, events, pipeline file: events/s and peak RSS of one bounded run
  echo
  echo "$1, $2 events:"
  echo
  for i in "${!BINS[@]}"; do
    timed "${BINS[$i]}" run "$3" --log-level warn
    echo "${NAMES[$i]}: $(per_sec "$2" "$SECS") events/s, $(fixed2 "$SECS") s, $CPU CPU s, peak RSS $RSS_MIB MiB"
  done
}

cat > "$WORK/f2f.yaml" <<YAML
data_dir: $WORK/.sluice
sources:
  in:
    type: file
    include: [$WORK/in.log]
    read_from: beginning
    follow: false
    channels: [main]
channels:
  main: {type: memory, capacity: 10000}
sinks:
  out:
    type: file
    channel: main
    path: $WORK/out-sluice.log
YAML

LINES=$PLAIN_LINES BYTES=$PLAIN_BYTES
echo
echo "file -> file, $(numfmt --to=iec "$BYTES") in $LINES lines (page cache warm), best of $RUNS, load $(cut -d' ' -f1-3 /proc/loadavg):"
echo
table_head tool seconds "CPU s" "CPU s/GiB" MiB/s events/s "peak RSS MiB"
cat "$WORK/in.log" > /dev/null
best "cat" 'rm -f "$WORK/out-cat.log"' sh -c "cat '$WORK/in.log' > '$WORK/out-cat.log'"
for i in "${!BINS[@]}"; do
  best "${NAMES[$i]}" \
    'cmp -s "$WORK/in.log" "$WORK/out-sluice.log" || { echo "OUTPUT DIFFERS" >&2; exit 1; }; rm -rf "$WORK/out-sluice.log" "$WORK/.sluice"' \
    "${BINS[$i]}" run "$WORK/f2f.yaml" --log-level warn
done
echo "(each sluice output identical to its input)"

# Scenario 2: Apache combined lines, 11 named captures, flat JSON out.
COMBINED='^(?P<client>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<method>\S+) (?P<path>\S+) (?P<protocol>[^"]*)" (?P<status>\d{3}) (?P<bytes>\d+|-) "(?P<referer>[^"]*)" "(?P<agent>[^"]*)"$'
cat > "$WORK/regex.yaml" <<YAML
data_dir: $WORK/.sluice
sources:
  in:
    type: file
    include: [$WORK/combined.log]
    read_from: beginning
    follow: false
    processors: [parse]
    channels: [main]
processors:
  parse:
    type: parse_regex
    pattern: '$COMBINED'
    types: {status: integer}
channels:
  main: {type: memory, capacity: 10000}
sinks:
  out:
    type: file
    channel: main
    path: $WORK/out-regex.json
    format: json
    encoding: {layout: flat}
YAML
LINES=$COMBINED_LINES BYTES=$COMBINED_BYTES
echo
echo "file -> parse_regex (11 captures) -> file (flat JSON), $(numfmt --to=iec "$BYTES") in $LINES lines, best of $RUNS:"
echo
table_head tool seconds "CPU s" "CPU s/GiB" MiB/s events/s "peak RSS MiB"
# The same with `workers: 1`: the chain on the source task's thread only.
sed 's/^    types: {status: integer}$/    types: {status: integer}\n    workers: 1/' "$WORK/regex.yaml" > "$WORK/regex-1.yaml"
for i in "${!BINS[@]}"; do
  for w in 1 auto; do
    yaml=$WORK/regex.yaml
    [ "$w" = 1 ] && yaml=$WORK/regex-1.yaml
    best "${NAMES[$i]}, workers: $w" \
      '[ "$(wc -l < "$WORK/out-regex.json")" = "$LINES" ] || { echo "MISSING EVENTS" >&2; exit 1; }; rm -rf "$WORK/out-regex.json" "$WORK/.sluice"' \
      "${BINS[$i]}" run "$yaml" --log-level warn
  done
done

P=3000000
null_pipeline "$WORK/parse.yaml" \
  "gen: {type: generator, count: $P, format: apache_common, processors: [parse, errors], channels: [main]}" "" \
  "processors:
  parse:
    type: parse_regex
    pattern: '^(?P<client>\\S+) \\S+ (?P<user>\\S+) \\[[^\\]]+\\] \"(?P<method>\\S+) (?P<path>\\S+) [^\"]*\" (?P<status>\\d{3}) (?P<bytes>\\d+|-)\$'
    types: {status: integer}
  errors:
    type: filter
    condition: '.status >= 400'"
rate "generator (apache_common) -> parse_regex (6 captures) -> filter -> null" "$P" "$WORK/parse.yaml"

N=20000000
null_pipeline "$WORK/g2n.yaml" "gen: {type: generator, count: $N, channels: [main]}"
rate "generator (sequence) -> null" "$N" "$WORK/g2n.yaml"
