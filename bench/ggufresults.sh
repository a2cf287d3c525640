#!/bin/bash
# Mixed-precision GGUF files measured in llama.cpp (docs/results.md, "Mixed-precision GGUF
# (issue 14)"): at the size of each of llama.cpp's recipe files, EvoPress's file against the
# recipe file itself, the DP allocation and the largest uniform type no larger, all scored by
# llama-perplexity --kl-divergence against the F32 export on held-out text.
#
# Usage: bench/ggufresults.sh MODEL_DIR OUTDIR [FILE_TYPES]
#   FILE_TYPES: llama.cpp file types whose recipe files set the sizes (default "Q2_K Q3_K_M Q4_K_M")
#
# Steps (every output is kept in OUTDIR, and a rerun skips the steps whose output is there):
#  1. evopress export --format gguf --type f32                      f32.gguf, the reference
#  2. evopress imatrix on CALIB (the first 512 chunks of 256 tokens) imatrix.gguf, used by everything below
#  3. evopress db build gguf --imatrix imatrix.gguf                  db/ (TYPES)
#  4. per file type F: llama-quantize --imatrix imatrix.gguf f32.gguf llama-F.gguf F; its size S and
#     its token-embedding / output types TE, OT (every other file is made with the same TE, OT)
#  5. evopress search quant --target-size S (SEARCH_FLAGS) → evopress-F.json → evopress-F.gguf
#     evopress baseline quant --method dp --target-size S     → dp-F.json       → dp-F.gguf
#     evopress export --type T --imatrix imatrix.gguf for every T of TYPES: uniform-T-F.gguf;
#     the largest one no larger than S is the uniform row
#  6. llama-perplexity --kl-divergence-base on EVAL from f32.gguf (-c CTX --chunks CHUNKS), then
#     --kl-divergence for every file; the tables go to OUTDIR/results.md and results.tsv. (For a
#     tokenizer without byte fallback, characters outside its vocabulary become spaces first.)
#
# Environment (defaults in brackets):
#   EVOPRESS           evopress binary [built from this checkout into OUTDIR/evopress]
#   EVOPRESS_LLAMACPP  folder holding llama-quantize and llama-perplexity [~/.cache/llamacpp-tools/bin]
#   CALIB, EVAL        calibration and held-out text [../shared/data/pd-english/{calib,eval}.txt]
#   TYPES              the database's and the uniform rows' ggml types [q2_K,q3_K,q4_K,q5_K,q6_K,q8_0;
#                      q4_0,q4_1,q5_0,q5_1,q8_0,iq4_nl when the hidden size is not a multiple of 256]
#   SEARCH_FLAGS       [--offspring 8 --stages 2:1024,1:4096 --init-tokens 1024 --generations 16];
#                      SEARCH_FLAGS_<FILE_TYPE> (e.g. SEARCH_FLAGS_Q2_K) replaces them at that size
#   SEED [0]  CTX [256]  CHUNKS [200]  THREADS [2] (llama-perplexity -t; results do not depend on it)
#   FROM               a finished OUTDIR of the same model whose files, all but the EvoPress searches'
#                      (evopress-*, search-*, export-evopress-*, kld-evopress-*, the tables), are
#                      copied in first: another search setting is then measured against the very same
#                      reference, database, recipe, DP and uniform files [none]
set -euo pipefail

usage() { sed -n '6,7p' "$0" | sed 's/^# //' >&2; exit 2; }
[ $# -ge 2 ] || usage
REPO=$(cd "$(dirname "$0")/.." && pwd)
M=$(realpath "$1")
OUT=$(mkdir -p "$2" && realpath "$2")
FTYPES=${3:-"Q2_K Q3_K_M Q4_K_M"}
CALIB=$(realpath "${CALIB:-$REPO/../shared/data/pd-english/calib.txt}")
EVAL=$(realpath "${EVAL:-$REPO/../shared/data/pd-english/eval.txt}")
LL=${EVOPRESS_LLAMACPP:-${XDG_CACHE_HOME:-$HOME/.cache}/llamacpp-tools/bin}
SEED=${SEED:-0}
CTX=${CTX:-256}
CHUNKS=${CHUNKS:-200}
THREADS=${THREADS:-2}
SEARCH_FLAGS=${SEARCH_FLAGS:-"--offspring 8 --stages 2:1024,1:4096 --init-tokens 1024 --generations 16"}
export LD_LIBRARY_PATH=$LL${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
for tool in llama-quantize llama-perplexity; do
	[ -x "$LL/$tool" ] || { echo "no $LL/$tool: build llama.cpp's tools (../shared/tools/llamacpp/build.sh) or set EVOPRESS_LLAMACPP" >&2; exit 1; }
done
[ -f "$M/config.json" ] || { echo "$M: not a model directory (no config.json)" >&2; exit 1; }
if [ -n "${FROM:-}" ]; then
	FROM=$(realpath "$FROM")
	[ -f "$FROM/settings.txt" ] || { echo "FROM=$FROM: not an output folder of this script (no settings.txt)" >&2; exit 1; }
	for want in "model $M" "calib $CALIB" "eval $EVAL" "seed $SEED"; do
		grep -qxF "$want" "$FROM/settings.txt" || { echo "FROM=$FROM: settings.txt lacks \"$want\" (made with other inputs)" >&2; exit 1; }
	done
	grep -q "^llama-perplexity -c $CTX --chunks $CHUNKS " "$FROM/settings.txt" || { echo "FROM=$FROM: its base logits are not -c $CTX --chunks $CHUNKS (settings.txt)" >&2; exit 1; }
	for f in "$FROM"/*; do
		case ${f##*/} in
		evopress-* | search-* | export-evopress-* | kld-evopress-* | results.* | stats.jsonl | settings.txt | run.log | evopress | ggufstat) ;;
		*) [ -e "$OUT/${f##*/}" ] || cp -r "$f" "$OUT/" ;;
		esac
	done
fi
cd "$OUT"
if [ -z "${EVOPRESS:-}" ]; then
	(cd "$REPO" && go build -o "$OUT/evopress" ./cmd/evopress && go build -o "$OUT/ggufstat" ./bench/ggufstat)
	EVOPRESS=$OUT/evopress
else
	(cd "$REPO" && go build -o "$OUT/ggufstat" ./bench/ggufstat)
fi
E=$EVOPRESS
STAT=$OUT/ggufstat
HIDDEN=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['hidden_size'])" "$M/config.json")
if [ -z "${TYPES:-}" ]; then
	if [ $((HIDDEN % 256)) -eq 0 ]; then TYPES=q2_K,q3_K,q4_K,q5_K,q6_K,q8_0; else TYPES=q4_0,q4_1,q5_0,q5_1,q8_0,iq4_nl; fi
fi
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
# timed NAME CMD...: runs CMD, its output in NAME.log, and its wall and CPU seconds in NAME.time.
timed() {
	local name=$1; shift
	/usr/bin/time -f "%e %U %S" -o "$name.time" "$@" > "$name.log" 2>&1 || { echo "failed: $* (see $OUT/$name.log)" >&2; tail -5 "$name.log" >&2; exit 1; }
}
{
	echo "model $M"; echo "calib $CALIB"; echo "eval $EVAL"; echo "types $TYPES"; echo "seed $SEED"
	echo "search $SEARCH_FLAGS"; for F in $FTYPES; do v=SEARCH_FLAGS_$F; [ -n "${!v:-}" ] && echo "search at $F: ${!v}"; done; echo "llama-perplexity -c $CTX --chunks $CHUNKS -t $THREADS"
	echo "evopress $(cd "$REPO" && git describe --always --dirty 2>/dev/null || echo unknown)"
} > settings.txt

# 1–3: the reference file, the importance matrix, the database.
[ -f f32.gguf ] || { log "F32 export"; timed export-f32 "$E" export --model "$M" --format gguf --type f32 --out f32.gguf; }
[ -f imatrix.gguf ] || { log "importance matrix"; timed imatrix "$E" imatrix --model "$M" --calib "$CALIB" --seq-len 256 --chunks 512 --out imatrix.gguf; }
if [ ! -f db.done ]; then # (an interrupted build resumes)
	log "database ($TYPES)"
	timed db "$E" db build gguf --model "$M" --calib "$CALIB" --seed "$SEED" --imatrix imatrix.gguf --types "$TYPES" --out db
	touch db.done
fi

# 4–5: the files.
for F in $FTYPES; do
	if [ ! -f "llama-$F.gguf" ]; then
		log "llama-quantize $F"
		timed "quantize-$F" "$LL/llama-quantize" --imatrix imatrix.gguf f32.gguf "llama-$F.gguf" "$F" "$THREADS"
	fi
	read -r S TE OT < <("$STAT" "llama-$F.gguf" | python3 -c "import json,sys; s=json.load(sys.stdin); print(s['bytes'], s['token_embedding_type'], s['output_tensor_type'] or '-')")
	fixed=(--token-embedding-type "$TE")
	[ "$OT" != - ] && fixed+=(--output-tensor-type "$OT")
	if [ ! -f "evopress-$F.json" ]; then
		flags_var=SEARCH_FLAGS_$F
		flags=${!flags_var:-$SEARCH_FLAGS}
		log "search at $F's size $S bytes (${fixed[*]} $flags)"
		# shellcheck disable=SC2086
		timed "search-$F" "$E" search quant --model "$M" --calib "$CALIB" --db db --target-size "$S" "${fixed[@]}" $flags --seed "$SEED" --out "evopress-$F.json"
	fi
	if [ ! -f "dp-$F.json" ]; then
		log "dp at $S bytes"
		timed "dp-$F" "$E" baseline quant --method dp --model "$M" --calib "$CALIB" --db db --target-size "$S" "${fixed[@]}" --seed "$SEED" --out "dp-$F.json"
	fi
	for m in evopress dp; do
		[ -f "$m-$F.gguf" ] || timed "export-$m-$F" "$E" export --model "$M" --profile "$m-$F.json" --format gguf --out "$m-$F.gguf"
	done
	for T in ${TYPES//,/ }; do
		[ -f "uniform-$T-$F.gguf" ] || timed "export-uniform-$T-$F" "$E" export --model "$M" --format gguf --type "$T" --imatrix imatrix.gguf "${fixed[@]}" --out "uniform-$T-$F.gguf"
	done
	# The uniform rows: the largest uniform files no larger than S (several when types tie in size).
	best=0
	for T in ${TYPES//,/ }; do
		b=$(stat -c %s "uniform-$T-$F.gguf")
		if [ "$b" -le "$S" ] && [ "$b" -gt "$best" ]; then best=$b; fi
	done
	: > "uniform-$F.list"
	for T in ${TYPES//,/ }; do
		[ "$(stat -c %s "uniform-$T-$F.gguf")" -eq "$best" ] && echo "uniform-$T-$F.gguf" >> "uniform-$F.list"
	done
	[ "$best" -eq 0 ] && log "$F: no uniform type gives a file of at most $S bytes"
done

# 6: llama-perplexity. llama.cpp's SentencePiece tokenizer throws on a character its vocabulary
# lacks when there are no byte-fallback tokens (babyllama-1m has no newline): such characters
# are replaced by spaces in a copy of the text (evopress would map them to <unk>).
python3 - "$M/tokenizer.json" "$EVAL" eval.txt <<'PY'
import json, sys
tok, src, dst = sys.argv[1:]
m = json.load(open(tok, encoding="utf-8"))["model"]
text = open(src, encoding="utf-8", newline="").read()
vocab = m.get("vocab", {})
n = 0
if not m.get("byte_fallback", False) and isinstance(vocab, dict) and "▁" in vocab:
    def keep(c):
        return c == " " or c in vocab
    n = sum(1 for c in text if not keep(c))
    text = "".join(c if keep(c) else " " for c in text)
open(dst, "w", encoding="utf-8", newline="").write(text)
print("eval.txt: %d characters outside the vocabulary replaced by spaces" % n, file=sys.stderr)
PY
LP=("$LL/llama-perplexity" -c "$CTX" --chunks "$CHUNKS" -t "$THREADS" -ctk f32 -ctv f32 -fa off)
if ! grep -q "Final estimate" base.log 2>/dev/null; then
	log "base logits (F32, $CHUNKS chunks of $CTX)"
	timed base "${LP[@]}" -m f32.gguf -f eval.txt --kl-divergence-base base.kld
fi
files=(f32.gguf)
for F in $FTYPES; do
	files+=("llama-$F.gguf" "evopress-$F.gguf" "dp-$F.gguf")
	mapfile -t -O "${#files[@]}" files < "uniform-$F.list"
done
for f in "${files[@]}"; do
	k=kld-${f%.gguf}
	# llama.cpp logs from a thread and sometimes exits before the last lines are written: rerun
	# until the mean KLD is there.
	for attempt in 1 2 3; do
		grep -q "Mean    KLD" "$k.log" 2>/dev/null && break
		log "llama-perplexity --kl-divergence $f (attempt $attempt)"
		timed "$k" "${LP[@]}" -m "$f" --kl-divergence-base base.kld --kl-divergence
	done
done

# The tables.
"$STAT" -layers "${files[@]}" > stats.jsonl
python3 - "$FTYPES" <<'EOF'
import json, re, sys, os
ftypes = sys.argv[1].split()
stats = {os.path.basename(s["file"]): s for s in map(json.loads, open("stats.jsonl"))}
def kld(f):
    t = open("kld-" + f[:-5] + ".log").read()
    k = re.search(r"Mean\s+KLD:\s+(-?[0-9.]+)\s+±\s+([0-9.]+)", t)
    p = re.search(r"Mean PPL\(Q\)\s*:\s+([0-9.]+)\s+±\s+([0-9.]+)", t)
    if not k or not p:
        sys.exit("kld-%s.log: no mean KLD / PPL(Q) lines" % f[:-5])
    return float(k.group(1)), float(k.group(2)), float(p.group(1)), float(p.group(2))
def times(name):
    try:
        w, u, s = open(name + ".time").read().split()[-3:]
        return "%.0f s (CPU %.0f s)" % (float(w), float(u) + float(s))
    except OSError:
        return ""
def search_note(f):
    p = json.load(open(f))["search"]
    return "%d gen., %d evaluations" % (p.get("generations", 0), p.get("evaluations", 0))
rows = []
def row(ft, method, f, time):
    s = stats[f]
    k, ke, p, pe = kld(f)
    rows.append(dict(ftype=ft, method=method, file=f, bpw=s["linear_bpw"], bytes=s["bytes"], kld=k, kld_err=ke,
                     ppl=p, ppl_err=pe, te=s["token_embedding_type"], ot=s["output_tensor_type"], time=time,
                     types=s["types"]))
row("—", "F32 (reference)", "f32.gguf", "")
for ft in ftypes:
    row(ft, "llama.cpp " + ft, "llama-" + ft + ".gguf", "— (rules)")
    row(ft, "**EvoPress**", "evopress-" + ft + ".gguf", times("search-" + ft) + ", " + search_note("evopress-" + ft + ".json"))
    row(ft, "DP", "dp-" + ft + ".gguf", times("dp-" + ft))
    for u in open("uniform-" + ft + ".list").read().split():
        row(ft, "uniform " + u.split("-")[1], u, "—")
    limit = stats["llama-" + ft + ".gguf"]["bytes"]
    for r in rows:
        if r["ftype"] == ft and r["bytes"] > limit:
            sys.exit("%s is larger than llama.cpp's %s file (%d > %d bytes)" % (r["file"], ft, r["bytes"], limit))
    fixed = {(r["te"], r["ot"]) for r in rows if r["ftype"] == ft}
    if len(fixed) != 1:
        sys.exit("%s: the files differ in their token embedding / output types: %s" % (ft, sorted(fixed)))
with open("results.tsv", "w") as w:
    cols = ["ftype", "method", "file", "bpw", "bytes", "kld", "kld_err", "ppl", "ppl_err", "te", "ot", "time"]
    w.write("\t".join(cols) + "\n")
    for r in rows:
        w.write("\t".join(str(r[c]) for c in cols) + "\n")
with open("results.md", "w") as w:
    w.write("| size of | method | bits per weight (linear layers) | file bytes | mean KLD | PPL | linear layer types | search time |\n")
    w.write("|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        ty = ", ".join("%s %d" % kv for kv in sorted(r["types"].items()))
        w.write("| %s | %s | %.4f | %d | %.6f ± %.6f | %.4f ± %.4f | %s | %s |\n" % (
            r["ftype"], r["method"], r["bpw"], r["bytes"], r["kld"], r["kld_err"], r["ppl"], r["ppl_err"], ty, r["time"]))
    w.write("\nToken embedding / output types: " + "; ".join(sorted({"%s: %s / %s" % (r["ftype"], r["te"], r["ot"] or "(tied)") for r in rows if r["ftype"] != "—"})) + "\n")
print(open("results.md").read())
EOF
