#!/bin/sh
# bench/storage_scale.sh — a Mixtral-shaped model several times larger than the
# RAM budget: vib3 (frames + io_uring + prefetch) beside llama.cpp (mmap) under
# the same cgroup v1 memory cap, beside the disk-bandwidth bound. Not part of
# `make test` (generates ~16 GB of files; tens of minutes on a busy machine).
#
#   BUILD=build sh bench/storage_scale.sh [--dim 4096] [--layers 10] [--ffn 14336] [--budget 2G]
#                                         [-n 16] [--dir /tmp/vib3-scale] [--keep] [--skip-llama]
#                                         [--evicts "lru lfru"] [--prefetches "none auto both"] [--gguf FILE]
#
# 1. tests/llama/gguf_synth writes a random Mixtral-shaped Q4_0 GGUF (llama.cpp's
#    `llama` arch with 8 experts top-2; Llama-2 vocab), `vib3 convert` imports
#    it losslessly (Q4_0 pages; other matrices Q8_0) with --no-calib (random
#    weights: routing statistics mean nothing, and the calibration pass would
#    run the 14.8 B model over models/calib/default.txt — an hour on 2 cores).
# 2. storage_diskbw: O_DIRECT io_uring 1 MiB reads at QD4 into huge pages over
#    the .vib3 file = the disk ceiling D (GB/s) measured in this run.
# 3. vib3: tests/tools/storage_run with --ram-budget BUDGET (frames = budget -
#    dense weights - KV - 64 MiB, docs/STORAGE.md), inside a cgroup v1 memory
#    group limited to BUDGET + 256 MiB (the process's own code, stacks, the
#    mmapped dense weights and the page cache all count), greedy decode of N
#    tokens after an 8-token prompt, for lru/lfru x none/both; tok/s of decode.
# 4. llama.cpp: bench/llama_memcap.sh GGUF CAP -n N (mmap, page cache charged to
#    the same kind of cgroup, caches of the file dropped first).
# 5. bounds: D / (bytes vib3 read per token) — what this read volume allows
#    at the measured disk speed — and D / (active expert bytes per token), the
#    bound with no cache at all.
# Results: a table on stdout and JSON lines in $BUILD/bench/storage_scale.jsonl.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd) || exit 1
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
DIM=4096 LAYERS=10 FFN=14336 BUDGET=2G N=16 DIR=/tmp/vib3-scale KEEP=0 SKIP_LLAMA=0
EVICTS="lru lfru" PREFETCHES="none auto both" GGUF_IN=
while [ $# -gt 0 ]; do
    case "$1" in
        --dim) DIM=$2; shift 2 ;; --layers) LAYERS=$2; shift 2 ;; --ffn) FFN=$2; shift 2 ;;
        --budget) BUDGET=$2; shift 2 ;; -n) N=$2; shift 2 ;; --dir) DIR=$2; shift 2 ;;
        --keep) KEEP=1; shift ;; --skip-llama) SKIP_LLAMA=1; shift ;;
        --evicts) EVICTS=$2; shift 2 ;; --prefetches) PREFETCHES=$2; shift 2 ;; --gguf) GGUF_IN=$2; shift 2 ;;
        *) echo "usage: $0 [--dim D] [--layers L] [--ffn F] [--budget 2G] [-n N] [--dir DIR] [--keep] [--skip-llama] [--evicts \"lru lfru\"] [--prefetches \"none auto both\"] [--gguf FILE]" >&2; exit 1 ;;
    esac
done
case "$BUDGET" in
    *[0-9]) BUDGET_B=$BUDGET ;; *[kK]) BUDGET_B=$(( ${BUDGET%?} * 1024 )) ;;
    *[mM]) BUDGET_B=$(( ${BUDGET%?} * 1048576 )) ;; *[gG]) BUDGET_B=$(( ${BUDGET%?} * 1073741824 )) ;;
    *) echo "bad --budget $BUDGET" >&2; exit 1 ;;
esac
CAP_B=$((BUDGET_B + 268435456))
MODELS=${VIB3_MODELS:-$(cd .. && pwd)/shared/models}
VOCAB=$MODELS/llama2-vocab/ggml-vocab-llama-spm.gguf
make -s BUILD="$BUILD" "$BUILD/vib3" "$BUILD/tools/storage_run" "$BUILD/tools/storage_diskbw" >/dev/null || exit 1
BUILD=$BUILD sh tests/llama/build.sh >/dev/null || { echo "SKIP: llama.cpp peer unavailable"; exit 3; }
mkdir -p "$DIR" "$BUILD/bench"
OUT=$BUILD/bench/storage_scale.jsonl
GGUF=${GGUF_IN:-$DIR/mixtral-d$DIM-l$LAYERS-f$FFN-q4_0.gguf}
V3=$DIR/$(basename "$GGUF" .gguf).vib3
[ $KEEP -eq 1 ] || trap 'rm -f "$GGUF" "$V3"' EXIT

if [ ! -f "$GGUF" ]; then
    echo "generating $GGUF"
    "$BUILD/llama/gguf_synth" "$GGUF" --vocab-from "$VOCAB" --dim "$DIM" --layers "$LAYERS" --experts 8 --top-k 2 \
        --ffn "$FFN" --heads 32 --kv-heads 8 --type q4_0 >/dev/null || exit 1
fi
if [ ! -f "$V3" ]; then
    echo "converting to $V3"
    "$BUILD/vib3" convert --model "$GGUF" --output "$V3" --no-index --no-calib --quiet || exit 1
fi
"$BUILD/vib3" info "$V3" | sed -n '1,12p'

drop_cache() { dd if="$1" iflag=nocache count=0 2>/dev/null; }

# run a command inside a fresh cgroup v1 memory group limited to $1 bytes
in_cgroup() {
    cap=$1; shift
    cg=/sys/fs/cgroup/memory/vib3_storage_scale_$$
    if ! mkdir "$cg" 2>/dev/null || ! echo "$cap" > "$cg/memory.limit_in_bytes" 2>/dev/null; then
        rmdir "$cg" 2>/dev/null
        echo "note: no cgroup v1 memory group; running uncapped" >&2
        "$@"
        return $?
    fi
    sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec "$@"' sh "$cg" "$@"
    rc=$?
    echo "cgroup peak $(cat "$cg/memory.max_usage_in_bytes") bytes, failcnt $(cat "$cg/memory.failcnt")" >&2
    rmdir "$cg" 2>/dev/null
    return $rc
}

echo "== disk ($(date -u +%H:%M:%S) UTC, load avg $(cut -d' ' -f1-3 /proc/loadavg))"
drop_cache "$V3"
DISK=$("$BUILD/tools/storage_diskbw" "$V3" --bytes 4G --qd 4 --json)
echo "$DISK"
D=$(echo "$DISK" | python3 -c 'import json,sys; print(json.load(sys.stdin)["gb_s"])')

echo "== vib3, --ram-budget $BUDGET, cgroup cap $CAP_B bytes"
for ev in $EVICTS; do
    for pf in $PREFETCHES; do
        drop_cache "$V3"
        in_cgroup "$CAP_B" "$BUILD/tools/storage_run" "$V3" --ram-budget "$BUDGET" --tokens "$N" --ctx 256 \
            --threads 2 --evict "$ev" --prefetch "$pf" --json > "$DIR/v.json" 2> "$DIR/v.err"
        tail -n 2 "$DIR/v.err"
        python3 - "$DIR/v.json" "$D" "$ev" "$pf" <<'EOF' | tee -a "$OUT"
import json, sys
r = json.load(open(sys.argv[1])); t = r["tiers"]; d = float(sys.argv[2])
bound = d * 1e9 / t["bytes_read_per_token"] if t["bytes_read_per_token"] else 0
print(json.dumps({"tool": "vib3", "evict": sys.argv[3], "prefetch": sys.argv[4], "decode_tok_s": r["decode_tok_s"],
                  "gen_tokens": r["gen_tokens"], "bytes_read_per_token": t["bytes_read_per_token"],
                  "hit_rate": t["hit_rate"], "fault_rate": t["fault_rate"], "prefetch_precision": t["prefetch_precision"],
                  "prefetch_recall": t["prefetch_recall"], "io_wait_ms_per_token": t["io_wait_ms_per_token"],
                  "disk_gb_s": d, "disk_bound_tok_s_at_this_read_volume": round(bound, 3), "frames": t["frames_total"],
                  "frame_bytes": t["frame_bytes"], "backend": t["backend"], "ok": r["ok"]}))
EOF
    done
done

if [ $SKIP_LLAMA -eq 0 ]; then
    echo "== llama.cpp (mmap) under the same cap"
    sh bench/llama_memcap.sh "$GGUF" "$CAP_B" -p 0 -n "$N" -r 1 -t 2 | tee "$DIR/l.txt"
    sed -n 's/.*tok_s=\([0-9.]*\).*/{"tool": "llama.cpp", "decode_tok_s": \1}/p' "$DIR/l.txt" | head -n 1 >> "$OUT"
fi

python3 - "$V3" "$D" "$BUILD/vib3" <<'EOF'
import json, subprocess, sys
info = subprocess.run([sys.argv[3], "info", "--json", sys.argv[1]], capture_output=True, text=True).stdout
try:
    j = json.loads(info)
    active = j.get("fit", {}).get("worst_case_read_bytes_per_token")
except Exception:
    active = None
if active:
    print("no-cache bound: %.3f tok/s (%.0f MB of experts per token at %s GB/s)" % (float(sys.argv[2]) * 1e9 / active, active / 1e6, sys.argv[2]))
EOF
