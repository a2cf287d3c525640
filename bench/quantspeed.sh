#!/bin/bash
# Quantization speed of `evopress export --format gguf --type T` against `llama-quantize --pure`
# on the same weights (docs/results.md, "Quantization speed (issue 14)").
#
# Usage: bench/quantspeed.sh [EVOPRESS_BINARY] [WORK_DIR]
# Environment: MODEL (Hugging Face directory; default ../shared/models/llama-pd-11m next to the
# repository), LLAMACPP_BIN (default ~/.cache/llamacpp-tools/bin), THREADS (threads of both tools:
# llama-quantize's nthreads argument and evopress's GOMAXPROCS; default 2), REPS (runs per type and
# tool, the fastest is kept; default 3), TYPES (default: all twelve block types), INPUT (the GGUF
# type llama-quantize reads: f32, bf16 or f16; default f32), IMATRIX (no, yes or both; default
# both), CHUNKS (imatrix chunks of 512 tokens; default 16).
#
# The model is exported once as an INPUT GGUF by evopress; llama-quantize reads that file, evopress
# export reads the model directory (the same weights for a BF16 model and INPUT f32 or bf16). For
# each type, with and without an importance matrix (made by `evopress imatrix`), the two tools run
# back to back REPS times, each timed as a whole run (file reading and writing included) by
# /usr/bin/time. The speed is MB of float32 input of the quantized tensors (their weight count × 4,
# from llama-quantize's log) per second of wall time and per second of user+system CPU time; the
# CPU figure is what a shared machine disturbs least. The first row (type INPUT, nothing
# quantized) gives each tool's fixed cost: reading the model and writing it unquantized.
set -u
REPO=$(cd "$(dirname "$0")/.." && pwd)
E=$(realpath "${1:-$REPO/evopress}")
W=${2:-$(mktemp -d)}
MODEL=$(realpath "${MODEL:-$REPO/../shared/models/llama-pd-11m}")
LB=${LLAMACPP_BIN:-$HOME/.cache/llamacpp-tools/bin}
THREADS=${THREADS:-2}
REPS=${REPS:-3}
TYPES=${TYPES:-q4_0 q4_1 q5_0 q5_1 q8_0 q2_k q3_k q4_k q5_k q6_k iq4_nl iq4_xs}
INPUT=${INPUT:-f32}
IMATRIX=${IMATRIX:-both}
CHUNKS=${CHUNKS:-16}
case $IMATRIX in no) IMS=no ;; yes) IMS=yes ;; both) IMS="no yes" ;; *) echo "IMATRIX must be no, yes or both" >&2; exit 1 ;; esac
mkdir -p "$W" && cd "$W" || exit 1
[ -x "$E" ] || { echo "no evopress binary at $E (go build -o evopress ./cmd/evopress)" >&2; exit 1; }
[ -x "$LB/llama-quantize" ] || { echo "no llama-quantize in $LB (set LLAMACPP_BIN)" >&2; exit 1; }

echo "# $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; threads $THREADS; reps $REPS; model $MODEL"
echo "# load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
# llama-quantize reads a leading number in its output name as the type: keep the names alphabetic.
"$E" export --model "$MODEL" --format gguf --type "$INPUT" --out input.gguf --force > /dev/null || exit 1
if [ "$IMATRIX" != no ]; then
  "$E" imatrix --model "$MODEL" --out imatrix.gguf --chunks "$CHUNKS" --force > /dev/null || exit 1
fi

# timed LOG CMD...: runs CMD with its output in LOG and prints "wall cpu" (seconds).
timed() {
  local log=$1; shift
  /usr/bin/time -f "%e %U %S" -o "$log.time" "$@" > "$log" 2>&1 || { echo "failed: $* (see $W/$log)" >&2; exit 1; }
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$log.time"
}

# best "wall cpu" pairs: the smallest wall and the smallest CPU time over the runs.
best() { sort -n -k1,1 "$1" | head -1 | cut -d' ' -f1; sort -n -k2,2 "$1" | head -1 | cut -d' ' -f2; }

printf "%-7s %-7s %9s %7s %7s %7s %7s %8s %8s %8s %8s %5s %5s\n" type imatrix weights lq_wall lq_cpu ev_wall ev_cpu lq_MB/s ev_MB/s lq_MB/c ev_MB/c cpu× wall×
for imat in $IMS; do
  for t in "$INPUT" $TYPES; do
    [ "$t" = "$INPUT" ] && [ "$imat" = yes ] && continue
    lqim=() evim=()
    if [ "$imat" = yes ]; then lqim=(--imatrix imatrix.gguf); evim=(--imatrix imatrix.gguf); fi
    : > lq.runs; : > ev.runs
    for _ in $(seq "$REPS"); do
      timed lq.log "$LB/llama-quantize" --pure "${lqim[@]}" input.gguf lq.gguf "$t" "$THREADS" >> lq.runs
      GOMAXPROCS=$THREADS timed ev.log "$E" export --model "$MODEL" --format gguf --type "$t" "${evim[@]}" --out ev.gguf --force >> ev.runs
    done
    # Weights of the tensors quantized: llama-quantize's 2-D tensors ("[ 256, 4096, 1, 1], type = f32"),
    # all of which --pure converts to T or its fallback; none for the input type.
    n=0
    if [ "$t" != "$INPUT" ]; then
      n=$(grep -o '\] [^ ]*weight *- \[[ 0-9,]*\]' lq.log | sed 's/.*\[//; s/[],]/ /g' | awk '$2 > 1 {s += $1*$2*$3*$4} END {print s+0}')
      q=$(grep -o ' -> *[0-9.]* MiB' lq.log | wc -l) d=$(grep -o '\] [^ ]*weight *- \[[ 0-9,]*\]' lq.log | sed 's/.*\[//; s/[],]/ /g' | awk '$2 > 1' | wc -l)
      [ "$q" -eq "$d" ] || echo "warning: $t: llama-quantize converted $q tensors, the file has $d 2-D tensors" >&2
    fi
    read -r lqw lqc < <(best lq.runs | xargs)
    read -r evw evc < <(best ev.runs | xargs)
    awk -v t="$t" -v im="$imat" -v n="$n" -v lw="$lqw" -v lc="$lqc" -v ew="$evw" -v ec="$evc" 'BEGIN {
      if (n == 0) { printf "%-7s %-7s %9s %7.2f %7.2f %7.2f %7.2f\n", t, im, "-", lw, lc, ew, ec; exit }
      mb = 4 * n / 1e6  # /usr/bin/time counts in units of 10 ms: a 0 is below that
      lw = lw > 0 ? lw : 0.01; ew = ew > 0 ? ew : 0.01; lc = lc > 0 ? lc : 0.01; ec = ec > 0 ? ec : 0.01
      printf "%-7s %-7s %9d %7.2f %7.2f %7.2f %7.2f %8.1f %8.1f %8.1f %8.1f %5.2f %5.2f\n", t, im, n, lw, lc, ew, ec, mb / lw, mb / ew, mb / lc, mb / ec, lc / ec, lw / ew }'
  done
done
rm -f lq.gguf ev.gguf
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# lq = llama-quantize, ev = evopress export (files in $W); _wall, _cpu: seconds of the whole run (best of $REPS); MB/s, MB/c: 4 × weights / 1e6 per wall, per CPU second; cpu×, wall×: evopress's speed over llama-quantize's"
