#!/usr/bin/env bash
# Throughput benchmarks, sluice beside a physical baseline in one run.
#
#   benches/throughput.sh [SIZE_MIB]      (default 1024)
#
# 1. file -> file passthrough of a generated log of ~160-byte lines:
#    `cat in > out` versus `sluice run` (file source, follow: false ->
#    memory channel -> file sink, text). Wall time, MiB/s, events/s, peak RSS.
# 2. generator -> null: events/s.
# Works in a temporary directory; prints a Markdown table.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIZE_MIB=${1:-1024}
bench_build
bench_workdir
gen_log "$WORK/in.log" "$SIZE_MIB"
sync

measure() { # name, command...: one table row
  local name=$1
  shift
  local secs
  timed "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  secs=$(awk -v s="$ELAPSED" 'BEGIN { print (s == 0 ? 0.01 : s) }')
  table_row "$name" "$(fixed2 "$secs")" "$(mib_per_sec "$BYTES" "$secs")" "$(per_sec "$LINES" "$secs")" "$RSS_MIB"
}

rate() { # label, events, pipeline file: events/s and peak RSS of one bounded run
  echo
  echo "$1, $2 events:"
  echo
  timed "$BIN" run "$3" --log-level warn
  echo "$(per_sec "$2" "$SECS") events/s, $(fixed2 "$SECS") s, peak RSS $RSS_MIB MiB"
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

echo
echo "file -> file, $(numfmt --to=iec "$BYTES") in $LINES lines (page cache warm):"
echo
table_head tool seconds MiB/s events/s "peak RSS MiB"
cat "$WORK/in.log" > /dev/null
measure "cat" sh -c "cat '$WORK/in.log' > '$WORK/out-cat.log'"
rm -f "$WORK/out-cat.log"
measure "sluice" "$BIN" run "$WORK/f2f.yaml" --log-level warn
cmp -s "$WORK/in.log" "$WORK/out-sluice.log" && echo "(sluice output identical to input)" || { echo "OUTPUT DIFFERS" >&2; exit 1; }
rm -f "$WORK/out-sluice.log"

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
