#!/usr/bin/env bash
# Network benchmarks, sluice beside a minimal receiver in one run.
#
#   benches/tcp.sh [SIZE_MIB]      (default 1024)
#
# 1. tcp -> null: a sender streams a generated log of ~160-byte lines over
#    one TCP connection (sendfile), shuts its side down and waits for the
#    receiver to close. The receiver is either a minimal one (Python: read
#    into a 1 MiB buffer, count newlines) or `sluice run` with a `tcp`
#    source -> memory channel -> `null` sink. The receiver closes once it has
#    read and framed everything, so the sender's wall time covers it all.
#    MiB/s and events/s.
# 2. The hop: an edge (generator, JSON lines -> sluice sink) sends to an
#    aggregator (sluice source -> null) on this machine; the edge's bounded
#    run ends once every batch was acknowledged. Events/s and MiB/s.
# Works in a temporary directory; prints Markdown tables.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIZE_MIB=${1:-1024}
bench_build --bin sluice
bench_workdir

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on $1" >&2
  exit 1
}

gen_log "$WORK/in.log" "$SIZE_MIB"

cat > "$WORK/send.py" <<'PY'
import socket, sys, time
path, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port))
start = time.perf_counter()
with open(path, "rb") as f:
    s.sendfile(f)
s.shutdown(socket.SHUT_WR)
while s.recv(65536):
    pass
print(f"{time.perf_counter() - start:.3f}")
PY

cat > "$WORK/receive.py" <<'PY'
import socket, sys
port = int(sys.argv[1])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(("127.0.0.1", port))
l.listen(1)
buf = bytearray(1 << 20)
lines = 0
got = 0
# A connection that sends nothing (the readiness probe) is skipped.
while got == 0:
    c, _ = l.accept()
    while True:
        n = c.recv_into(buf)
        if n == 0:
            break
        got += n
        lines += buf.count(b"\n", 0, n)
    c.close()
print(lines, file=sys.stderr)
PY

row() { # name, seconds
  table_row "$1" "$(fixed2 "$2")" "$(mib_per_sec "$BYTES" "$2")" "$(per_sec "$LINES" "$2")"
}

echo
echo "tcp -> null, $LINES lines, $((BYTES >> 20)) MiB, one connection:"
echo
table_head receiver seconds MiB/s events/s
for round in 1 2; do
  port=$(free_port)
  python3 "$WORK/receive.py" "$port" 2>"$WORK/baseline.count" &
  PIDS+=($!)
  wait_port "$port"
  secs=$(python3 "$WORK/send.py" "$WORK/in.log" "$port")
  wait
  if [ "$(cat "$WORK/baseline.count")" != "$LINES" ]; then
    echo "the minimal receiver counted $(cat "$WORK/baseline.count") of $LINES lines" >&2
    exit 1
  fi
  row "minimal receiver (Python, count newlines), run $round" "$secs"

  port=$(free_port)
  null_pipeline "$WORK/tcp.yaml" "in: {type: tcp, address: '127.0.0.1:$port', channels: [main]}"
  SLUICE_LOG_FORMAT=json "$BIN" run "$WORK/tcp.yaml" 2>"$WORK/sluice.log" &
  sluice=$!
  PIDS+=("$sluice")
  wait_port "$port"
  secs=$(python3 "$WORK/send.py" "$WORK/in.log" "$port")
  kill -TERM "$sluice"
  wait "$sluice"
  got=$(final_events "$WORK/sluice.log" out)
  if [ "$got" != "$LINES" ]; then
    echo "sluice delivered $got of $LINES events" >&2
    exit 1
  fi
  row "sluice tcp -> null, run $round" "$secs"
done

EVENTS=${HOP_EVENTS:-5000000}
port=$(free_port)
null_pipeline "$WORK/agg.yaml" "edges: {type: sluice, address: '127.0.0.1:$port', channels: [main]}"
cat > "$WORK/edge.yaml" <<YAML
data_dir: $WORK/.sluice-edge
sources:
  gen: {type: generator, format: json, count: $EVENTS, channels: [main]}
channels:
  main: {type: memory, capacity: 10000}
sinks:
  up: {type: sluice, channel: main, address: '127.0.0.1:$port'}
YAML
SLUICE_LOG_FORMAT=json "$BIN" run "$WORK/agg.yaml" 2>"$WORK/agg.log" &
agg=$!
PIDS+=("$agg")
wait_port "$port"
start=$(date +%s.%N)
SLUICE_LOG_FORMAT=json "$BIN" run "$WORK/edge.yaml" 2>"$WORK/edge.log"
end=$(date +%s.%N)
kill -TERM "$agg"
wait "$agg"
# The average body size, from the same generator written to a file.
cat > "$WORK/size.yaml" <<YAML
data_dir: $WORK/.sluice-size
sources:
  gen: {type: generator, format: json, count: 100000, channels: [main]}
channels:
  main: {type: memory}
sinks:
  out: {type: file, channel: main, path: $WORK/sample.log}
YAML
"$BIN" run "$WORK/size.yaml" --log-level warn
avg=$(awk -v b="$(stat -c %s "$WORK/sample.log")" 'BEGIN { printf "%.1f", b / 100000 - 1 }')
bytes=$(awk -v a="$avg" -v n="$EVENTS" 'BEGIN { printf "%.0f", a * n }')
got=$(final_events "$WORK/agg.log" out)
echo
echo "the hop: generator (JSON) -> sluice sink -> sluice source -> null, $EVENTS events:"
echo
awk -v s="$start" -v e="$end" -v n="$EVENTS" -v b="$bytes" -v g="$got" \
  'BEGIN { printf "%.0f events/s, %.0f MiB/s of bodies, %.2f s; the aggregator received %d events\n", n/(e-s), b/1048576/(e-s), e-s, g }'
