#!/bin/sh
# test_probe_wide.sh — above hidden 2048 the converter fits the look-ahead probes on a sketch
# (src/convert/probe.h): a generated 2304-wide Mixtral converts with a PRED section whose META
# note names the sketch, the file passes its checksums, and the prefetcher predicts with the
# file's probes at least as well as with the router look-ahead on the same text.
BUILD=${BUILD:-build}
T=$(mktemp -d)
pass=0; fail=0; skip=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
trap 'rm -rf "$T"' EXIT
make -s -o "$BUILD/vib3" BUILD="$BUILD" "$BUILD/tools/gen_models" > /dev/null 2>&1 || { bad "build gen_models"; echo "$pass passed, $fail failed, $skip skipped"; exit 1; }
"$BUILD/tools/gen_models" "$T" hf:mixtral:f32:1:2304:64:4:3:300 > /dev/null || bad "gen_models"
head -c 1500 models/calib/default.txt > "$T/calib.txt"
"$BUILD/vib3" convert --model "$T/mixtral-f32" --output "$T/wide.vib3" --calib "$T/calib.txt" --quiet || bad "convert"
strings "$T/wide.vib3" | grep -q "look-ahead probes: 6 pairs from [0-9]* tokens, sketch of 512 features" && ok ||
    bad "META calibration note: $(strings "$T/wide.vib3" | grep -o 'look-ahead probes[^"]*')"
"$BUILD/vib3" info "$T/wide.vib3" | grep -q "PRED(" && ok || bad "info lists a PRED section"
"$BUILD/vib3" info "$T/wide.vib3" | grep -q "all sections ok" && ok || bad "checksums"
acc() { # layer l+1 recall with or without the file's probes (k + 1 guesses either way: method 2)
    VIB3_PREFETCH_PROBES=$1 VIB3_EXPERT_BUDGET=50% VIB3_PAGES_BACKEND=frames "$BUILD/vib3" run "$T/wide.vib3" \
        -p "The morning train left the station" -n 300 --ignore-eos --temp 0 --prefetch lookahead --stats 2>&1 |
        sed -n 's/^predictor: lookahead (\([a-z]*\).*recall \([0-9.]*\)$/\1 \2/p'
}
p=$(acc 1); r=$(acc 0)
case "$p" in probe\ *) ok ;; *) bad "predictor with probes: '$p'" ;; esac
case "$r" in router\ *) ok ;; *) bad "predictor without: '$r'" ;; esac
python3 -c 'import sys; p, r = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if p >= r else 1)' "${p#* }" "${r#* }" &&
    ok || bad "probe recall ${p#* } below the router's ${r#* } on generated text"
echo "    probe look-ahead recall ${p#* }, router ${r#* }"
echo "$pass passed, $fail failed, $skip skipped"
