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
# and lines per CPU-second, and peak RSS, for the example as written, with
# `workers: auto`, and as one task (every processor in the source's chain);
# with BASE set the older build runs too. Needs python3 with PyYAML. All rows are
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
# Each build runs the example as it is (`workers: 1`), with `workers: auto`
# (the parse may split over threads), and as one task: the stages
# (`blocks`, `detect`) moved back into the source's chain, so that the
# whole pipeline runs on the source task's thread.
grep -q '^    workers: 1$' pipelines/anomaly-hdfs.yaml
sed -e '/^    workers: 1$/d' pipelines/anomaly-hdfs.yaml > "$WORK/anomaly-hdfs-auto.yaml"
python3 - pipelines/anomaly-hdfs.yaml "$WORK/anomaly-hdfs-inline.yaml" <<'PY'
import sys, yaml
p = yaml.safe_load(open(sys.argv[1]))
p.pop("tests", None)
src = next(iter(p["sources"].values()))
procs = p["processors"]
# Follow the source's one channel through the stages reading it.
while len(src["channels"]) == 1:
    ch = src["channels"][0]
    stage = next((k for k, v in procs.items() if v.get("input") == ch), None)
    if stage is None:
        break
    cfg = procs[stage]
    src["processors"].append(stage)
    src["channels"] = cfg.pop("channels")
    if "selector" in cfg:
        src["selector"] = cfg.pop("selector")
    for k in ("input", "batch_size"):
        cfg.pop(k, None)
    del p["channels"][ch]
yaml.safe_dump(p, open(sys.argv[2], "w"), sort_keys=False)
PY
BINS=() NAMES=() PIPES=()
for b in ${BASE:+"$BASE"} "$BIN"; do
  name=sluice
  [ "$b" = "${BASE:-}" ] && name="sluice (BASE)"
  BINS+=("$b" "$b" "$b")
  PIPES+=("$WORK/anomaly-hdfs-inline.yaml" "$WORK/anomaly-hdfs-auto.yaml" "$PWD/pipelines/anomaly-hdfs.yaml")
  NAMES+=("$name, one task" "$name, workers: auto" "$name, as written")
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
