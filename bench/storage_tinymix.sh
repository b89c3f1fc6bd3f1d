#!/bin/sh
# bench/storage_tinymix.sh — the trained tinymix-brown (real routing) through the
# buffer manager: page fault rate (split into late prefetch / lost hint /
# unpredicted), hit rate, prefetch precision/recall, the predictors'
# expert-level accuracy and bytes read per token for every eviction policy x
# predictor at several expert budgets; the one-layer planner of before
# (lookahead-1) and perfect-knowledge ceilings (oracle-D: the true routing
# hinted D layers ahead, replayed from a recorded run); plus the offline hit
# rates of LRU / LFUDA / LFRU / Belady on the recorded page trace. Not part of
# `make test` (a few minutes). The converted file carries look-ahead probes
# (PRED, fitted on models/calib/default.txt, not the held-out text): the
# lookahead / both rows score with them; lookahead-router / both-router are
# the same planner with the router look-ahead (VIB3_PREFETCH_PROBES=0; k + 1
# guesses per target, where the probes default to k: "lookahead, margin 1" is the
# probes at k + 1).
#
#   BUILD=build sh bench/storage_tinymix.sh [--tokens 400] [--budgets "25% 50% 75%"]
#        [--evicts "lru lfru"] [--reps 2] [--page-neurons 64]
#
# Method: tinymix is converted to Q4_0 (--quant q4_0: the issue's byte budget) with --page-neurons K (K=64: 6 pages per
# expert); the held-out text is fed one token at a time through decode
# (storage_run --teacher: decode's access pattern on real text), 2 threads,
# io_uring, frames sized by VIB3_EXPERT_BUDGET (% of expert bytes; frames are
# page bytes rounded up to 4 KiB, so fewer pages fit than the percentage says).
# A fault is an acquire that waited for a read. Fault counts depend on timing
# (a busy CPU gives reads more time): --reps runs every row N times and
# prints the mean and the range. Output: a markdown table on stdout; JSON
# lines in $BUILD/bench/storage_tinymix.jsonl.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd) || exit 1
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
TOKENS=400 BUDGETS="25% 50% 75%" K=64 EVICTS="lru lfru" REPS=1
while [ $# -gt 0 ]; do
    case "$1" in
        --tokens) TOKENS=$2; shift 2 ;;
        --budgets) BUDGETS=$2; shift 2 ;;
        --evicts) EVICTS=$2; shift 2 ;;
        --reps) REPS=$2; shift 2 ;;
        --page-neurons) K=$2; shift 2 ;;
        *) echo "usage: $0 [--tokens N] [--budgets \"25% 50%\"] [--evicts \"lru lfru lfuda\"] [--reps N] [--page-neurons K]" >&2; exit 1 ;;
    esac
done
MODELS=${VIB3_MODELS:-$(cd .. && pwd)/shared/models}
SRC=$MODELS/tinymix-brown
[ -d "$SRC" ] || { echo "SKIP: $SRC not found"; exit 3; }
make -s BUILD="$BUILD" "$BUILD/vib3" "$BUILD/tools/storage_run" "$BUILD/tools/trace_sim" >/dev/null || exit 1
mkdir -p "$BUILD/bench"
OUT=$BUILD/bench/storage_tinymix.jsonl
: > "$OUT"
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
M=$tmp/tinymix-p$K.vib3
"$BUILD/vib3" convert --model "$SRC" --output "$M" --quant q4_0 --page-neurons "$K" --calib models/calib/default.txt \
    --quiet || exit 1
# prompt bytes: about 3.3 bytes per token for this BPE
BYTES=$((TOKENS * 33 / 10))
echo "tinymix-brown Q4_0, $K neurons per page; $TOKENS held-out tokens teacher-forced; reps $REPS; load avg at start $(cut -d' ' -f1-3 /proc/loadavg)"

sr() { # budget evict prefetch [storage_run args...]
    b=$1 ev=$2 pf=$3; shift 3
    VIB3_EXPERT_BUDGET=$b VIB3_PAGES_BACKEND=frames "$BUILD/tools/storage_run" "$M" --teacher --tokens 0 \
        --prompt-file "$SRC/heldout.txt" --prompt-bytes "$BYTES" --ctx 2048 --threads 2 --evict "$ev" --prefetch "$pf" "$@"
}
run() { # label budget evict prefetch [storage_run args...]
    label=$1; shift
    sr "$@" --json > "$tmp/r.json" || { echo "| $2 | $3 | $label | failed |" >&2; return 1; }
    python3 - "$tmp/r.json" "$label" "$1" "$(cut -d' ' -f1 /proc/loadavg)" >> "$OUT" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); r["label"] = sys.argv[2]; r["budget"] = sys.argv[3]; r["load"] = float(sys.argv[4])
print(json.dumps(r))
PY
}

# the routing of this text, for the oracle rows (identical in every run: greedy, teacher-forced)
sr 50% lfru none --record-routing "$tmp/routing.bin" > /dev/null || exit 1
for rep in $(seq "$REPS"); do
    for b in $BUDGETS; do
        for ev in $EVICTS; do
            for pf in none coact lookahead both; do run "$pf" "$b" "$ev" "$pf"; done
            for pf in lookahead both; do VIB3_PREFETCH_PROBES=0 run "$pf-router" "$b" "$ev" "$pf"; done
            VIB3_PREFETCH_MARGIN=1 run "lookahead, margin 1" "$b" "$ev" lookahead
            # the planner before this change: one layer ahead, no wrap, default window, no
            # resident-hint protection / expired-first / inline reaping, router look-ahead (no probes)
            VIB3_PREFETCH_PROBES=0 VIB3_PREFETCH_DEPTH=1 VIB3_PREFETCH_WRAP=0 VIB3_PREFETCH_WINDOW=0 VIB3_HINT_PROTECT=0 VIB3_EXPIRED_FIRST=0 \
                VIB3_REAP_INLINE=0 run lookahead-1 "$b" "$ev" lookahead
            for d in 1 2; do run "oracle-$d" "$b" "$ev" none --oracle "$tmp/routing.bin" --oracle-depth $d; done
            run "oracle-2, layer 0 unknown" "$b" "$ev" none --oracle "$tmp/routing.bin" --oracle-depth 2 --oracle-skip-first 1
        done
    done
done

python3 - "$OUT" <<'PY'
import json, sys
rows = {}
order = []
for line in open(sys.argv[1]):
    r = json.loads(line)
    key = (r["budget"], r["tiers"]["evict"], r["label"])
    if key not in rows: rows[key] = []; order.append(key)
    rows[key].append(r)
def mean(v): return sum(v) / len(v)
print()
print("| budget | evict | prefetch | fault rate (range) | late / lost / unpredicted faults | hit rate | prefetch precision / recall (pages) | hinted P / R (experts) | KiB read / token | io wait ms / token |")
print("|---|---|---|---|---|---|---|---|---|---|")
for key in order:
    rs = rows[key]; t = [r["tiers"] for r in rs]; p = [r["predictors"] for r in rs]
    fr = [x["fault_rate"] * 100 for x in t]
    rng = " (%.2f–%.2f)" % (min(fr), max(fr)) if len(fr) > 1 else ""
    pfp = "–" if key[2] == "none" else "%.1f%% / %.1f%%" % (100 * mean([x["prefetch_precision"] for x in t]), 100 * mean([x["prefetch_recall"] for x in t]))
    hp = "–" if key[2] in ("none",) or key[2].startswith("oracle") else "%.1f%% / %.1f%%" % (100 * mean([x["hinted_precision"] for x in p]), 100 * mean([x["hinted_recall"] for x in p]))
    print("| %s | %s | %s | %.2f%%%s | %.0f / %.0f / %.0f | %.2f%% | %s | %s | %.0f | %.2f |" % (
        key[0], key[1], key[2], mean(fr), rng, mean([x["faults_late"] for x in t]), mean([x["faults_lost"] for x in t]),
        mean([x["faults_unpredicted"] for x in t]), 100 * mean([x["hit_rate"] for x in t]), pfp, hp,
        mean([x["bytes_read_per_token"] for x in t]) / 1024, mean([x["io_wait_ms_per_token"] for x in t])))
for lab in ("lookahead", "lookahead-router"):
    ps = [r["predictors"] for (b, e, l), v in rows.items() if l == lab for r in v]
    if ps:
        print("look-ahead accuracy, layer l+1 at its default guesses (probe k, router k+1; expert level), %s (%s): P %.1f%% R %.1f%%" % (
            lab, ps[0].get("predictor", "?"), 100 * mean([x["lookahead_precision"] for x in ps]),
            100 * mean([x["lookahead_recall"] for x in ps])))
r0 = json.loads(open(sys.argv[1]).readline())["predictors"]
print()
print("one-layer predictor accuracy (expert level, k (+1) guesses): coact P %.1f%% R %.1f%%, lookahead P %.1f%% R %.1f%%; load %.1f-%.1f" % (
    100 * r0["coact_precision"], 100 * r0["coact_recall"], 100 * r0["lookahead_precision"], 100 * r0["lookahead_recall"],
    min(r["load"] for v in rows.values() for r in v), max(r["load"] for v in rows.values() for r in v)))
PY

echo
echo "offline (demand paging only, same trace; trace_sim):"
VIB3_PAGES_BACKEND=mmap "$BUILD/tools/storage_run" "$M" --teacher --tokens 0 --prompt-file "$SRC/heldout.txt" \
    --prompt-bytes "$BYTES" --ctx 2048 --threads 1 --prefetch none --trace "$tmp/t.trace" > /dev/null || exit 1
# the same frame counts as the live runs (budget / frame bytes), and % of pages
FRAMES=$(python3 -c "import json,sys; print(','.join(sorted({str(json.loads(l)['tiers']['frames_total']) for l in open(sys.argv[1])}, key=int)))" "$OUT")
"$BUILD/tools/trace_sim" "$tmp/t.trace" --frames "$FRAMES"
"$BUILD/tools/trace_sim" "$tmp/t.trace" --percent 25,50,75
