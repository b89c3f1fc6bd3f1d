#!/bin/sh
# bench/storage_speed.sh — decode tokens/s beside the page and expert fault
# rates for prefetch modes on tinymix-brown (real routing) at expert budgets:
# does prediction pay? Alternating rounds (every mode once per round), median
# and range. Not part of `make test` (about a minute).
#
#   BUILD=build sh bench/storage_speed.sh [--rounds 5] [--budgets "25% 50% 75%"]
#        [--modes "none auto lookahead both"] [--evict lfru]
#
# Model: tinymix converted like bench/storage_tinymix.sh (Q4_0, 64-neuron
# pages, calibration models/calib/default.txt, so the file has PRED probes);
# 442 held-out tokens teacher-forced through decode (storage_run --teacher),
# 2 threads, io_uring. Output: a markdown table (docs/bench/storage.md §4).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd) || exit 1
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
ROUNDS=5 BUDGETS="25% 50% 75%" MODES="none auto lookahead both" EVICT=lfru
while [ $# -gt 0 ]; do
    case "$1" in
        --rounds) ROUNDS=$2; shift 2 ;; --budgets) BUDGETS=$2; shift 2 ;;
        --modes) MODES=$2; shift 2 ;; --evict) EVICT=$2; shift 2 ;;
        *) echo "usage: $0 [--rounds N] [--budgets \"25% 50%\"] [--modes \"none auto lookahead both\"] [--evict lfru]" >&2; exit 1 ;;
    esac
done
MODELS=${VIB3_MODELS:-$(cd .. && pwd)/shared/models}
SRC=$MODELS/tinymix-brown
[ -d "$SRC" ] || { echo "SKIP: $SRC not found"; exit 3; }
make -s BUILD="$BUILD" "$BUILD/vib3" "$BUILD/tools/storage_run" >/dev/null || exit 1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
M=$tmp/tinymix-p64.vib3
"$BUILD/vib3" convert --model "$SRC" --output "$M" --quant q4_0 --page-neurons 64 \
    --calib models/calib/default.txt --quiet || exit 1
echo "tinymix-brown Q4_0, 64 neurons per page, PRED probes; 442 held-out tokens teacher-forced; $ROUNDS rounds;" \
     "load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$BUILD/tools/storage_run" "$M" "$SRC/heldout.txt" "$ROUNDS" "$EVICT" "$BUDGETS" "$MODES" <<'PY'
import json, os, statistics as st, subprocess, sys
run_bin, model, text, rounds, evict, budgets, modes = sys.argv[1:8]
def run(budget, mode):
    env = dict(os.environ, VIB3_EXPERT_BUDGET=budget, VIB3_PAGES_BACKEND="frames")
    out = subprocess.run([run_bin, model, "--teacher", "--tokens", "0", "--prompt-file", text, "--prompt-bytes", "1320",
                          "--ctx", "2048", "--threads", "2", "--evict", evict, "--prefetch", mode, "--json"],
                         env=env, capture_output=True, text=True, check=True).stdout
    r = json.loads(out); t = r["tiers"]; p = r["predictors"]
    return (r["decode_tok_s"], 100 * t["fault_rate"], 100 * t["expert_fault_rate"], t["bytes_read_per_token"] / 1024,
            "%d/%d" % (p["auto_epochs_on"], p["auto_epochs_off"]) if mode == "auto" else "")
print("| budget | evict | prefetch | decode tok/s | page fault rate | expert fault rate | KiB read / token | auto epochs on/off |")
print("|---|---|---|---|---|---|---|---|")
for b in budgets.split():
    res = {m: [] for m in modes.split()}
    for _ in range(int(rounds)):
        for m in res: res[m].append(run(b, m))
    for m, v in res.items():
        col = lambda i, f: "%s (%s-%s)" % (f % st.median(x[i] for x in v), f % min(x[i] for x in v), f % max(x[i] for x in v))
        print("| %s | %s | %s | %s | %s | %s | %.0f | %s |" % (b, evict, m, col(0, "%.0f"), col(1, "%.2f%%"), col(2, "%.1f%%"),
              st.median(x[3] for x in v), " ".join(x[4] for x in v)), flush=True)
PY
