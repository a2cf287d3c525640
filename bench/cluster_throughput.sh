#!/bin/bash
# Evaluations per second of one drop search on the embedded llama-pd-11m with 1 and 2 workers,
# in-process and as separate `evopress worker` processes over TCP on loopback (docs/results.md,
# "Distributed evaluation"). Usage: bench/cluster_throughput.sh [EVOPRESS_BINARY] [WORK_DIR]
set -u
E=$(realpath "${1:-./evopress}")
W=${2:-$(mktemp -d)}
mkdir -p "$W" && cd "$W" || exit 1
A="search drop --target 0.25 --offspring 16 --stages 4:512,1:8192 --generations 6 --seed 0 --json"
one() { # name, extra search flags, then one GOMAXPROCS value per worker process
  local name=$1 extra=$2; shift 2
  local port=$((4300 + RANDOM % 500)) pids=()
  if [ $# -gt 0 ]; then
    for g in "$@"; do
      GOMAXPROCS=$g "$E" worker --nats nats://127.0.0.1:$port --once 2> "$name.worker$RANDOM.log" &
      pids+=($!)
    done
    extra="$extra --nats-listen 127.0.0.1:$port"
  fi
  "$E" $A $extra --out "$name.json" > "$name.out" 2> "$name.err"
  [ ${#pids[@]} -gt 0 ] && wait "${pids[@]}"
  python3 -c "
import json; p = json.load(open('$name.json')); s = p['search']
print('%-8s evaluations %d  %.1f s  %.2f evals/s  fitness %r  workers %d  range tasks %d' % ('$name', s['evaluations'], s['this_run_s'], s['evaluations'] / s['this_run_s'], p['fitness'], s['workers'], s['range_tasks']))"
}
one inproc1 "--workers 1"
one inproc2 "--workers 2"
one tcp1x2 "" 2
one tcp1x1 "" 1
one tcp2x1 "" 1 1
