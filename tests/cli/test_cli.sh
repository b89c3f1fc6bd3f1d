#!/bin/sh
# test_cli.sh — the `vib3` command line: help and exit codes for every
# command, settings flags, `info` on a real conversion, errors on stderr.
BUILD=${BUILD:-build}
V=$BUILD/vib3
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
expect_rc() { # expected-rc description command...
    want=$1; what=$2; shift 2
    "$@" >"$OUT" 2>"$ERR"; rc=$?
    [ "$rc" = "$want" ] && ok || { bad "$what: exit $rc, wanted $want"; head -3 "$ERR"; }
}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
OUT="$T/cli.out"; ERR="$T/cli.err"   # per run: parallel runs of this script must not share them
export VIB3_HOME="$T/home"

expect_rc 2 "no command" $V
expect_rc 0 "--help" $V --help
expect_rc 0 "--version" $V --version
expect_rc 2 "unknown command" $V frobnicate
grep -q "unknown command" "$ERR" && ok || bad "unknown command message"
# Ollama's habits: `vib3 help <command>`, `vib3 ls`, `vib3 show <model>`; a typo gets a suggestion
expect_rc 0 "help run" $V help run
grep -q "usage: vib3 run" "$OUT" && ok || bad "help run does not print run's usage"
expect_rc 2 "help of an unknown command" $V help frobnicate
expect_rc 2 "a typo" $V rnu
grep -q "did you mean 'run'" "$ERR" && ok || bad "no suggestion for 'rnu'"
expect_rc 2 "a typo" $V perplexty
grep -q "did you mean 'perplexity'" "$ERR" && ok || bad "no suggestion for 'perplexty'"
expect_rc 0 "ls" $V ls --json
expect_rc 2 "show without a model" $V show
for c in pull run serve convert list rm info hw bench perplexity; do
    expect_rc 0 "$c --help" $V $c --help
    [ -s "$OUT" ] && ok || bad "$c --help printed nothing on stdout"
done
expect_rc 2 "info without model" $V info
expect_rc 1 "info on a missing model" $V info /nonexistent.vib3
grep -q "nonexistent.vib3" "$ERR" && ok || bad "info error names the file"
expect_rc 2 "bad flag value" $V info x --ram-budget lots
# info never downloads (as `ollama show`): a repository not in the store says how to pull it
HF_ENDPOINT=http://127.0.0.1:9 expect_rc 1 "info of a repository not pulled" $V info some-org/some-model
grep -q "vib3 pull some-org/some-model" "$ERR" && ! grep -qi "pulling\|cannot reach" "$ERR" && ok ||
    { bad "info tried to pull, or did not say how"; cat "$ERR"; }
echo "not a model" > "$T/bad.vib3"
expect_rc 1 "info on a non-vib3 file" $V info "$T/bad.vib3"
grep -q "too small\|not a .vib3" "$ERR" && ok || bad "info says why the file is bad"

M=models/tinymix-brown
if [ -f $M/model.safetensors ]; then
    expect_rc 0 "convert bundled model (q4)" $V convert --model $M --output "$T/tm.vib3" --quant q4
    [ -f "$T/tm.vib3" ] && [ ! -f "$T/tm.vib3.tmp" ] && ok || bad "convert output / no tmp left"
    expect_rc 0 "info --json" $V info "$T/tm.vib3" --json
    python3 - "$T" <<'PY' && ok || bad "info --json fields"
import json, sys
d = json.load(open(sys.argv[1] + "/cli.out"))
need = ["arch", "n_layers", "n_experts", "n_experts_per_tok", "n_shared_experts", "hidden_size", "vocab_size",
        "params_total", "params_active", "quant", "n_pages", "page_bytes"]
missing = [k for k in need if k not in d]
assert not missing, missing
assert d["arch"] == "mixtral" and d["n_layers"] == 4 and d["n_experts"] == 8 and d["n_experts_per_tok"] == 2
assert d["hidden_size"] == 192 and d["vocab_size"] == 4096 and d["quant"] in ("q4_0", "q4_k16"), d["quant"]  # --quant q4: the default INT4
assert d["params_total"] == 9051840 and d["params_active"] == 3743424, (d["params_total"], d["params_active"])
PY
    expect_rc 0 "info --verify" $V info "$T/tm.vib3" --verify
    expect_rc 0 "info with a tiny budget" $V info "$T/tm.vib3" --ram-budget 4M --json
    python3 -c "import json; d=json.load(open('$OUT')); assert d['fit']['pages_on_disk'] > 0" && ok || bad "tiny budget leaves pages on disk"
    # info's fit is the buffer manager's rule: its least budget is the one run starts with, and the
    # pages it calls resident are the frames run gets (it said "22 resident" at 4M, where run refuses)
    expect_rc 0 "info --json (least budget)" $V info "$T/tm.vib3" --json
    min=$(python3 -c "import json; print(json.load(open('$OUT'))['fit']['min_ram_budget_bytes'])")
    expect_rc 0 "run at info's least budget" $V run "$T/tm.vib3" hi -n 1 --ram-budget "$min"
    expect_rc 1 "run 4 KiB below it" $V run "$T/tm.vib3" hi -n 1 --ram-budget "$((min - 4096))"
    expect_rc 0 "info at 4M" $V info "$T/tm.vib3" --ram-budget 4M --json
    python3 -c "import json; f=json.load(open('$OUT'))['fit']; assert not f['runs'] and f['pages_resident'] == 0, f" && ok ||
        bad "info at 4M claims it runs"
    mid=$((min + 1048576))
    expect_rc 0 "info between" $V info "$T/tm.vib3" --ram-budget "$mid" --json
    resident=$(python3 -c "import json; print(json.load(open('$OUT'))['fit']['pages_resident'])")
    expect_rc 0 "run between" $V run "$T/tm.vib3" hi -n 1 --ram-budget "$mid" --json
    frames=$(python3 -c "import json; print(json.load(open('$OUT'))['stats']['tiers']['frames_total'])")
    [ "$resident" = "$frames" ] && ok || bad "info: $resident pages resident, run: $frames frames"
    # info sizes the KV cache for the context run opens with (the trained one, at most 4096),
    # and run warns, as llama.cpp does, when -c goes past the trained context
    mkdir -p "$T/long"
    for f in $M/*; do ln -s "$(cd "$(dirname "$f")" && pwd)/$(basename "$f")" "$T/long/"; done
    rm "$T/long/config.json"
    python3 -c "import json,sys; c=json.load(open('$M/config.json')); c['max_position_embeddings']=32768; json.dump(c, open('$T/long/config.json','w'))"
    expect_rc 0 "convert a long-context variant" $V convert "$T/long" -o "$T/long.vib3" --no-calib -q
    expect_rc 0 "info --json of it" $V info "$T/long.vib3" --json
    info_ctx=$(python3 -c "import json; print(json.load(open('$OUT'))['fit']['ctx_size'])")
    expect_rc 0 "run --json of it" $V run "$T/long.vib3" hello -n 1 --json
    run_ctx=$(python3 -c "import json; print(json.load(open('$OUT'))['stats']['ctx_size'])")
    [ "$info_ctx" = "$run_ctx" ] && [ "$run_ctx" = 4096 ] && ok || bad "info fit for ctx $info_ctx, run opens $run_ctx (want 4096)"
    expect_rc 0 "run -c past the trained context" $V run "$T/tm.vib3" hello -n 1 -c 512
    grep -q "warning: context 512 is longer than the 256 positions" "$ERR" && ok || bad "no trained-context warning"
    expect_rc 0 "run -c within it" $V run "$T/tm.vib3" hello -n 1 -c 128
    ! grep -q "warning" "$ERR" && ok || bad "warning within the trained context"
    # -i with a prompt: the prompt is the first turn (llama.cpp's -i -p), then stdin
    printf 'second turn\n/exit\n' | $V run "$T/tm.vib3" -i "first turn" -n 2 >"$OUT" 2>"$ERR"
    grep -q "^> first turn" "$OUT" && [ "$(grep -c '^> ' "$OUT")" -ge 2 ] && ok ||
        { bad "run -i PROMPT did not start with the prompt"; head -5 "$OUT"; }
    # serve --host localhost (a name, as llama-server and Ollama take it) listens on its address
    $V serve "$T/tm.vib3" --host localhost --port 0 >"$T/serve.log" 2>&1 &
    spid=$!
    for i in $(seq 1 100); do grep -q "listening on" "$T/serve.log" && break; sleep 0.1; done
    port=$(sed -n 's/.*listening on http:\/\/127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log")
    [ -n "$port" ] && curl -s "http://127.0.0.1:$port/health" | grep -q '"ok"' && ok ||
        { bad "serve --host localhost"; cat "$T/serve.log"; }
    kill "$spid" 2>/dev/null; wait "$spid" 2>/dev/null
    # --output naming a directory puts <model name>.vib3 in it (was: a failed rename after the whole conversion)
    mkdir -p "$T/outdir"
    expect_rc 0 "convert into a directory" $V convert $M -o "$T/outdir" --no-calib -q
    [ -f "$T/outdir/tinymix-brown.vib3" ] && [ -z "$(ls -A "$T/outdir" | grep -v '^tinymix-brown.vib3$')" ] && ok ||
        bad "convert -o DIR: $(ls -A "$T/outdir")"
    expect_rc 1 "convert a missing dir" $V convert --model "$T/nope" --output "$T/x.vib3"
    [ ! -e "$T/x.vib3" ] && [ ! -e "$T/x.vib3.tmp" ] && ok || bad "failed convert left a file"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
