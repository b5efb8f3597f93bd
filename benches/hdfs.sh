#!/usr/bin/env bash
# The HDFS anomaly example end to end: pipelines/anomaly-hdfs.yaml (header
# `parse_regex` -> `timestamp` -> `template` -> `session` -> `anomaly`, two
# file sinks) over the Loghub HDFS sample repeated to LINES lines, every
# ten copies with their own block ids and a day later.
#
#   benches/hdfs.sh [LINES] [RUNS]                 (default 1000000 3)
#   BASE=/path/to/older/sluice benches/hdfs.sh ...
#
# Prints the best wall time of RUNS runs, its CPU seconds, lines per second
# and lines per CPU-second, and peak RSS, for the example as written and
# with `workers: 1`; with BASE set the older build runs too. All rows are
# interleaved, so that they meet the same load.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
N=${1:-1000000}
RUNS=${2:-3}
bench_build
bench_workdir
mkdir -p "$WORK/loghub"
python3 - "$PWD/testdata/loghub_2k/HDFS_2k.log" "$WORK/loghub/HDFS_2k.log" "$N" <<'PY'
import datetime, re, sys
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(src).read().splitlines()
blk = re.compile(r"blk_(-?)(\d+)")
with open(dst, "w") as f:
    written, copy = 0, 0
    while written < n:
        # Ten copies in a row share block ids (about 11 lines a block, as
        # in the whole HDFS log); the next ten rename them and happen a day
        # later, so that the earlier sessions close.
        group = copy // 10
        out = []
        for l in lines[: n - written]:
            day = datetime.datetime.strptime(l[:6], "%y%m%d") + datetime.timedelta(days=group)
            l = day.strftime("%y%m%d") + l[6:]
            out.append(blk.sub(lambda m: f"blk_{m.group(1)}{group}{m.group(2)[:12]}", l))
        f.write("\n".join(out) + "\n")
        written += len(out)
        copy += 1
PY
LINES=$(wc -l < "$WORK/loghub/HDFS_2k.log")
# Each build runs the example as it is and with `workers: 1` on every
# processor that may split (the whole chain on the source task's thread).
sed -e 's/^    type: parse_regex$/&\n    workers: 1/' -e 's/^    type: timestamp$/&\n    workers: 1/' \
  pipelines/anomaly-hdfs.yaml > "$WORK/anomaly-hdfs-1.yaml"
grep -q 'workers: 1' "$WORK/anomaly-hdfs-1.yaml"
BINS=() NAMES=() PIPES=()
for b in ${BASE:+"$BASE"} "$BIN"; do
  name=sluice
  [ "$b" = "${BASE:-}" ] && name="sluice (BASE)"
  BINS+=("$b" "$b") PIPES+=("$WORK/anomaly-hdfs-1.yaml" "$PWD/pipelines/anomaly-hdfs.yaml")
  NAMES+=("$name, workers: 1" "$name, as written")
done
declare -A best_secs best_cpu best_rss
for ((r = 0; r < RUNS; r++)); do
  for i in "${!BINS[@]}"; do
    rm -rf "$WORK/run" && mkdir -p "$WORK/run"
    # Not in a subshell: `timed` sets SECS, CPU and RSS_MIB here.
    cd "$WORK/run"
    LOGHUB="$WORK/loghub" timed "${BINS[$i]}" run "${PIPES[$i]}" --log-level warn >/dev/null 2>"$WORK/err" \
      || { cat "$WORK/err" >&2; exit 1; }
    cd "$OLDPWD"
    sessions=$(wc -l < "$WORK/run/out/hdfs-sessions.json")
    [ "$sessions" -gt 0 ] || { echo "NO SESSIONS" >&2; exit 1; }
    if [ -z "${best_secs[$i]:-}" ] || awk -v a="$SECS" -v b="${best_secs[$i]}" 'BEGIN { exit !(a < b) }'; then
      best_secs[$i]=$SECS best_cpu[$i]=$CPU best_rss[$i]=$RSS_MIB
    fi
  done
done
echo
echo "pipelines/anomaly-hdfs.yaml, $LINES HDFS lines ($(numfmt --to=iec "$(stat -c %s "$WORK/loghub/HDFS_2k.log")")), best of $RUNS, load $(cut -d' ' -f1-3 /proc/loadavg):"
echo
table_head build seconds "CPU s" "lines/s" "lines per CPU-s" "peak RSS MiB"
for i in "${!BINS[@]}"; do
  table_row "${NAMES[$i]}" "$(fixed2 "${best_secs[$i]}")" "${best_cpu[$i]}" \
    "$(per_sec "$LINES" "${best_secs[$i]}")" "$(per_sec "$LINES" "${best_cpu[$i]}")" "${best_rss[$i]}"
done
