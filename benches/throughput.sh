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
cd "$(dirname "$0")/.."
SIZE_MIB=${1:-1024}
cargo build --release --quiet
BIN=$PWD/target/release/sluice
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "generating ${SIZE_MIB} MiB of ~160-byte lines..." >&2
python3 - "$WORK/in.log" "$SIZE_MIB" <<'PY'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
target = mib << 20
levels = ["INFO", "WARN", "ERROR", "DEBUG"]
paths = ["/api/v1/users", "/api/v1/orders", "/static/app.js", "/healthz"]
with open(path, "w") as f:
    written, i, chunk = 0, 0, []
    while written < target:
        line = (f"2026-11-26T04:43:{i % 60:02d}.{i % 1000:03d}Z {levels[i % 4]:<5} "
                f"req={i:012d} host=web-{i % 16:02d} path={paths[i % 4]:<16} status={200 + (i % 5) * 100} "
                f"latency_ms={i % 997:4d} user=u{i % 10007:05d} msg=\"request handled ok\"\n")
        line = line[:-1].ljust(159) + "\n"
        chunk.append(line)
        written += len(line)
        i += 1
        if len(chunk) == 10000:
            f.write("".join(chunk)); chunk = []
    f.write("".join(chunk))
PY
LINES=$(wc -l < "$WORK/in.log")
BYTES=$(stat -c %s "$WORK/in.log")
sync

measure() { # name, command...
  local name=$1; shift
  /usr/bin/time -f "%e %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/err" || { cat "$WORK/err" >&2; exit 1; }
  read -r secs rss < "$WORK/time"
  awk -v n="$name" -v s="$secs" -v r="$rss" -v b="$BYTES" -v l="$LINES" \
    'BEGIN { if (s == 0) s = 0.01; printf "| %s | %.2f | %.0f | %.0f | %.1f |\n", n, s, b/1048576/s, l/s, r/1024 }'
}

rate() { # label, events, pipeline file: events/s and peak RSS of one bounded run
  echo
  echo "$1, $2 events:"
  echo
  local start end
  start=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$WORK/time" "$BIN" run "$3" --log-level warn
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v n="$2" -v r="$(cat "$WORK/time")" \
    'BEGIN { printf "%.0f events/s, %.2f s, peak RSS %.1f MiB\n", n/(e-s), e-s, r/1024 }'
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
echo "| tool | seconds | MiB/s | events/s | peak RSS MiB |"
echo "|---|---|---|---|---|"
cat "$WORK/in.log" > /dev/null
measure "cat" sh -c "cat '$WORK/in.log' > '$WORK/out-cat.log'"
rm -f "$WORK/out-cat.log"
measure "sluice" "$BIN" run "$WORK/f2f.yaml" --log-level warn
cmp -s "$WORK/in.log" "$WORK/out-sluice.log" && echo "(sluice output identical to input)" || { echo "OUTPUT DIFFERS" >&2; exit 1; }
rm -f "$WORK/out-sluice.log"

P=3000000
cat > "$WORK/parse.yaml" <<YAML
data_dir: $WORK/.sluice
sources:
  gen: {type: generator, count: $P, format: apache_common, processors: [parse, errors], channels: [main]}
processors:
  parse:
    type: parse_regex
    pattern: '^(?P<client>\\S+) \\S+ (?P<user>\\S+) \\[[^\\]]+\\] "(?P<method>\\S+) (?P<path>\\S+) [^"]*" (?P<status>\\d{3}) (?P<bytes>\\d+|-)\$'
    types: {status: integer}
  errors:
    type: filter
    condition: '.status >= 400'
channels:
  main: {type: memory, capacity: 10000}
sinks:
  out: {type: "null", channel: main}
YAML
rate "generator (apache_common) -> parse_regex (6 captures) -> filter -> null" "$P" "$WORK/parse.yaml"

N=20000000
cat > "$WORK/g2n.yaml" <<YAML
data_dir: $WORK/.sluice
sources:
  gen: {type: generator, count: $N, channels: [main]}
channels:
  main: {type: memory, capacity: 10000}
sinks:
  out: {type: "null", channel: main}
YAML
rate "generator (sequence) -> null" "$N" "$WORK/g2n.yaml"
