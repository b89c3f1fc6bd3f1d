#!/bin/sh
# test_bench_model.sh — `vib3 bench MODEL` takes only options that change what it measures
# (or how it prints it): -c/--ctx-size (once accepted and ignored: the context is sized from
# -p/-n/-d, as llama-bench sizes it) and the settings of other commands are usage errors naming
# the option; every option --help lists is accepted; -d/--n-depth (llama-bench's depth) really
# fills the cache: tests are named "pp16 @ d200", the JSON has n_depth and n_ctx = d + max(p, n) + 1;
# -b, -t, --kv-f16, -r show in the JSON.
BUILD=${BUILD:-build}
case $BUILD in /*) V=$BUILD/vib3 ;; *) V=$(pwd)/$BUILD/vib3 ;; esac
T=$(mktemp -d)
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
trap 'rm -rf "$T"' EXIT
export VIB3_HOME="$T/home"
M="$T/none.vib3"   # never opened by the usage-error cases: parsing fails first

usage_error() { # PATTERN ARGS...: exit 2 and stderr matches PATTERN (grep -E)
    pat=$1; shift
    "$V" "$@" >"$T/out" 2>"$T/err" </dev/null; rc=$?
    [ "$rc" = 2 ] && grep -Eq -- "$pat" "$T/err" && ok || { bad "vib3 $*: exit $rc, stderr: $(head -2 "$T/err")"; }
}

# ---- refused: -c (was silently ignored) and the settings of other commands ----------------
usage_error "option -c is not a bench option.*-d" bench "$M" -c 4096
usage_error "option --ctx-size is not a bench option" bench "$M" --ctx-size 4096
usage_error "option --ctx-size=4096 is not a bench option" bench "$M" --ctx-size=4096
for o in "--host 0.0.0.0" "--port 1" "-np 2" "--parallel 2" "--queue-max 1" "--api-key k" "--body-bytes-max 1M" \
         "--page-neurons 64" "--alias x" "-ngl 99"; do
    # shellcheck disable=SC2086
    usage_error "unknown option ${o%% *}" bench "$M" $o
done
# ---- bad values name the option ------------------------------------------------------------
usage_error "option -r: 0 is out of range" bench "$M" -r 0
usage_error "option -r: '3x'" bench "$M" -r 3x
usage_error "option -b: 0 is out of range" bench "$M" -b 0
usage_error "option --batch-size: 'x'" bench "$M" --batch-size x
usage_error "option -o: 'csv' is not json or md" bench "$M" -o csv
usage_error "option -d: 'x'" bench "$M" -d x
usage_error "option -d: '-1'" bench "$M" -d -1
usage_error "option -p: ''" bench "$M" -p ""
usage_error "option -d needs a value" bench "$M" -d

# ---- every option --help lists is accepted (a missing value says so; it is not "unknown") --
"$V" bench "$M" --help >"$T/help" 2>&1 || bad "bench MODEL --help exit"
grep -Eq -- '--n-depth' "$T/help" && ok || bad "--help lists -d/--n-depth"
! grep -Eq -- '--ctx-size|--port|--parallel|--page-neurons' "$T/help" && ok || bad "--help lists options bench does not take"
grep -E '^  -' "$T/help" | sed -E 's/^  //; s/  +.*//' | tr ',' '\n' | sed -E 's/^ *//; s/ .*//' | grep -E '^-' > "$T/opts"
[ "$(wc -l < "$T/opts")" -ge 15 ] && ok || bad "parsed only $(wc -l < "$T/opts") options from --help"
while read -r o; do
    "$V" bench "$M" "$o" >/dev/null 2>"$T/err" </dev/null
    grep -q "unknown option\|not a bench option" "$T/err" && bad "--help lists $o but bench rejects it: $(head -1 "$T/err")" || ok
done < "$T/opts"

# ---- on the bundled model: depth, batch, threads, KV type, repetitions change the run -----
if [ -d models/tinymix-brown ]; then
    "$V" convert --model models/tinymix-brown --output "$T/tiny.vib3" --quant q4 >/dev/null 2>&1 || bad "convert"
    "$V" bench "$T/tiny.vib3" -p 16 -n 4 -d 0,200 -r 2 -b 8 -t 1 --kv-f16 --json >"$T/b.json" 2>"$T/err" || bad "bench run: $(cat "$T/err")"
    python3 - "$T/b.json" <<'PY' && ok || bad "bench -d/-b/-t/--kv-f16/-r JSON: $(cat "$T/b.json")"
import json, sys
rows = json.load(open(sys.argv[1]))
tests = [r["test"] for r in rows]
assert tests == ["pp16", "pp16 @ d200", "tg4", "tg4 @ d200"], tests
for r in rows:
    assert r["n_ctx"] == 200 + 16 + 1, r["n_ctx"]          # sized from -p/-n/-d
    assert r["n_depth"] == (200 if "@" in r["test"] else 0)
    assert r["n_batch"] == 8 and r["n_threads"] == 1 and r["type_k"] == "f16" == r["type_v"]
    assert len(r["samples_ts"]) == 2 and r["avg_ts"] > 0
PY
    "$V" bench "$T/tiny.vib3" -p 0 -n 2 -r 1 -o md >"$T/b.md" 2>&1 && grep -q "| tg2 |" "$T/b.md" && ok || bad "-o md: $(cat "$T/b.md")"
else
    echo "SKIP: models/tinymix-brown absent"
fi

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
