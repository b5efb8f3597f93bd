# The harness the benchmark scripts share. A script sources it right after
# `set -euo pipefail`:
#
#   . "$(dirname "$0")/lib.sh"
#
# Sourcing moves to the repository root. Then `bench_build` builds the
# release binary (BIN) and `bench_workdir` makes the temporary directory
# (WORK) that is removed, with every process listed in PIDS, on exit.

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# bench_build [CARGO_ARGS...]: builds in release mode and sets BIN.
bench_build() {
  cargo build --release --quiet "$@"
  BIN=$PWD/target/release/sluice
}

# bench_workdir: sets WORK to a new temporary directory and PIDS to an empty
# list; both are cleaned up when the script exits.
bench_workdir() {
  WORK=$(mktemp -d)
  PIDS=()
  trap bench_cleanup EXIT
}

bench_cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}

# gen_log FILE SIZE_MIB: writes SIZE_MIB MiB of 159-byte log lines (an
# access log with level, request id, host, path, status, latency and user)
# to FILE and sets LINES and BYTES.
gen_log() {
  echo "generating $2 MiB of ~160-byte lines..." >&2
  python3 - "$1" "$2" <<'PY'
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
  LINES=$(wc -l < "$1")
  BYTES=$(stat -c %s "$1")
}

# gen_combined FILE SIZE_MIB: writes SIZE_MIB MiB of 159-byte Apache
# *combined* log lines (client, ident, user, time, request, status, bytes,
# referer, user agent; the agent padded to the length) to FILE and sets
# LINES and BYTES.
gen_combined() {
  echo "generating $2 MiB of 159-byte Apache combined lines..." >&2
  python3 - "$1" "$2" <<'PY'
import sys
path, mib = sys.argv[1], int(sys.argv[2])
target = mib << 20
users = ["-", "frank", "alice", "bob"]
reqs = ["GET /index.html", "GET /api/v1/users", "POST /api/v1/orders", "GET /static/app.js"]
with open(path, "w") as f:
    written, i, chunk = 0, 0, []
    while written < target:
        head = (f'10.{i % 256}.{i // 256 % 256}.{i % 97} - {users[i % 4]} '
                f'[26/Nov/2026:04:{i // 60 % 60:02d}:{i % 60:02d} +0000] '
                f'"{reqs[i % 4]} HTTP/1.1" {200 + (i % 5) * 100} {i % 99991} '
                f'"https://example.com/p{i % 13}" "Mozilla/5.0 (X11; Linux x86_64) ')
        line = head + "x" * max(0, 157 - len(head)) + '"\n'
        chunk.append(line)
        written += len(line)
        i += 1
        if len(chunk) == 10000:
            f.write("".join(chunk)); chunk = []
    f.write("".join(chunk))
PY
  LINES=$(wc -l < "$1")
  BYTES=$(stat -c %s "$1")
}

# null_pipeline FILE SOURCE [CHANNEL] [MORE]: writes a pipeline to FILE in
# which SOURCE (`name: {type: ..., channels: [main]}`) feeds the channel
# `main` (CHANNEL, by default `{type: memory, capacity: 10000}`) drained by
# the `null` sink `out`. MORE is added as it is (a `processors:` section).
# Its data directory is $WORK/.sluice-<file name without .yaml>.
null_pipeline() {
  local channel=${3:-"{type: memory, capacity: 10000}"}
  cat > "$1" <<YAML
data_dir: $WORK/.sluice-$(basename "$1" .yaml)
sources:
  $2
channels:
  main: $channel
sinks:
  out: {type: "null", channel: main}
${4:-}
YAML
}

# timed COMMAND...: runs COMMAND and sets SECS (wall seconds, from the
# clock around it), ELAPSED (wall seconds as /usr/bin/time counts them, to
# the hundredth), CPU (user + system seconds) and RSS_MIB (peak resident
# set). Returns COMMAND's status.
timed() {
  local start end user sys rss
  start=$(date +%s.%N)
  /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" || return $?
  end=$(date +%s.%N)
  read -r ELAPSED user sys rss < "$WORK/time"
  SECS=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.3f", e - s }')
  CPU=$(awk -v u="$user" -v y="$sys" 'BEGIN { printf "%.2f", u + y }')
  RSS_MIB=$(awk -v r="$rss" 'BEGIN { printf "%.1f", r / 1024 }')
}

# per_sec COUNT SECONDS: COUNT per second, rounded.
per_sec() {
  awk -v n="$1" -v s="$2" 'BEGIN { if (s == 0) s = 0.001; printf "%.0f", n / s }'
}

# mib_per_sec BYTES SECONDS: MiB per second, rounded.
mib_per_sec() {
  awk -v b="$1" -v s="$2" 'BEGIN { if (s == 0) s = 0.001; printf "%.0f", b / 1048576 / s }'
}

# fixed2 NUMBER: NUMBER with two decimals.
fixed2() {
  awk -v x="$1" 'BEGIN { printf "%.2f", x }'
}

# table_head COLUMN...: the head of a Markdown table.
table_head() {
  printf '|'
  printf ' %s |' "$@"
  printf '\n|'
  printf -- '---|%.0s' "$@"
  printf '\n'
}

# table_row CELL...: one row of a Markdown table.
table_row() {
  printf '|'
  printf ' %s |' "$@"
  printf '\n'
}

# final_events LOG ID: the events_out of component ID in the "final counts"
# line of a JSON log written by `sluice run` (SLUICE_LOG_FORMAT=json).
final_events() {
  grep '"final counts"' "$1" | grep "\"id\":\"$2\"" | grep -o '"events_out":[0-9]*' | cut -d: -f2
}
