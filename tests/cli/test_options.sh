#!/bin/sh
# test_options.sh — option parsing and --help of every `vib3` command, as a llama.cpp /
# Ollama user meets them: an option without its value, a bad number, a value out of range or
# with trailing garbage is a usage error (exit 2) whose message names the option; a setting
# of another command is refused; each --help lists only the command's own options, each
# once, in one aligned column. Nothing here opens a model: parsing fails first.
BUILD=${BUILD:-build}
V=$BUILD/vib3
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
export VIB3_HOME="$T/home"
M="$T/none.vib3"   # never opened: every case below fails while parsing

# usage_error PATTERN ARGS...: exit 2, stderr matches PATTERN (grep -E) and has the --help hint
usage_error() {
    pat=$1; shift
    "$V" "$@" >"$T/out" 2>"$T/err" </dev/null; rc=$?
    if [ "$rc" != 2 ]; then bad "vib3 $*: exit $rc, wanted 2"; head -3 "$T/err"; return; fi
    if ! grep -Eq -- "$pat" "$T/err"; then bad "vib3 $*: stderr lacks /$pat/:"; head -3 "$T/err"; return; fi
    grep -q -- "--help" "$T/err" && ok || bad "vib3 $*: no --help hint"
}

# ---- an option given last, without its value -------------------------------------------
for o in -p --prompt -f --file --trace --system -sys -n --max-tokens --n-predict --temp --temperature \
         --top-k --top-p --min-p --repeat-penalty --repeat-last-n --seed -s -t --threads -c --ctx-size \
         -b --batch-size --ram-budget --vram-budget --arena-bytes-max --evict --prefetch --io-uring \
         --io-queue-depth --home; do
    usage_error "option $o needs a value" run "$M" hello "$o"
done
for o in --ve-mode --ve-budget --ve-pages --ve-ef; do
    usage_error "option $o: missing value" run "$M" hello "$o"
done
for o in -f --file --save-logits --kl-base --max-tokens -c --ctx-size -t -b --ram-budget --evict --home; do
    usage_error "option $o needs a value" perplexity "$M" "$o"
done
for o in --model --output -o --quant --dense --page-neurons --calib --mem-budget -t --threads; do
    usage_error "option $o needs a value" convert "$T/src" "$o"
done
for o in --alias --host --port --api-key -np --parallel --queue-max --body-bytes-max -c -t --ram-budget --home; do
    usage_error "option $o needs a value" serve "$M" "$o"
done
for o in -c --ctx-size --ram-budget --vram-budget --home; do usage_error "option $o needs a value" info "$M" "$o"; done
for o in --quant -t --page-neurons --home; do usage_error "option $o needs a value" pull tinymix "$o"; done
usage_error "option --home needs a value" hw --home
usage_error "option --home needs a value" list --home
usage_error "option --home needs a value" rm x --home
for o in -p -n -r; do usage_error "option $o needs a value" bench "$M" "$o"; done
usage_error "option --isa needs a value" bench kernels --isa
usage_error "option --base needs a value" bench hnsw --base

# ---- not a number, trailing characters, empty, out of range ------------------------------
for v in abc 0.7x "" nan inf 1e999; do usage_error "option --temp: '.*' is not a number|option --temp: .* out of range" run "$M" hello --temp "$v"; done
usage_error "option --temp: '0.7x' is not a number" run "$M" hello --temp=0.7x
usage_error "option --temp: -1 is out of range" run "$M" hello --temp -1
usage_error "option --temp: 101 is out of range" run "$M" hello --temp 101
usage_error "option --top-p: 1.5 is out of range" run "$M" hello --top-p 1.5
usage_error "option --top-p: '0.9,' is not a number" run "$M" hello --top-p 0.9,
usage_error "option --min-p: -0.1 is out of range" run "$M" hello --min-p -0.1
usage_error "option --top-k: -5 is out of range" run "$M" hello --top-k -5
usage_error "option --top-k: '40k' is not an integer" run "$M" hello --top-k 40k
usage_error "option --top-k: '4.5' is not an integer" run "$M" hello --top-k 4.5
usage_error "option --repeat-penalty: 0 is out of range" run "$M" hello --repeat-penalty 0
usage_error "option --repeat-penalty: 11 is out of range" run "$M" hello --repeat-penalty 11
usage_error "option --repeat-last-n: -2 is out of range" run "$M" hello --repeat-last-n -2
usage_error "option -n/--max-tokens: '12x' is not an integer" run "$M" hello -n 12x
usage_error "option -n/--max-tokens: -3 is out of range" run "$M" hello -n -3
usage_error "option -n/--max-tokens: ' 5' is not an integer" run "$M" hello -n " 5"
usage_error "option --seed: -2 is out of range" run "$M" hello --seed -2
usage_error "option --seed: 99999999999999999999 is out of range" run "$M" hello --seed 99999999999999999999
usage_error "option --seed: '0x10' is not an integer" run "$M" hello --seed 0x10
usage_error "option -t: .*threads.*'two'" run "$M" hello -t two
usage_error "option -c: .*ctx_size.*'-1'" run "$M" hello -c -1
usage_error "option --ctx-size: .*'99999999999'" run "$M" hello --ctx-size=99999999999
usage_error "option --ram-budget: .*'lots'" run "$M" hello --ram-budget lots
usage_error "option --ram-budget: .*trailing" run "$M" hello --ram-budget 2Gx
usage_error "option --evict: .*'fifo'" run "$M" hello --evict fifo
usage_error "option --io-uring: .*'maybe'" run "$M" hello --io-uring maybe
usage_error "option --max-tokens: 'abc' is not an integer" perplexity "$M" -f x --max-tokens abc
usage_error "option --max-tokens: -1 is out of range" perplexity "$M" -f x --max-tokens -1
usage_error "option --page-neurons: 33 is not a multiple of 32" convert "$T/src" --page-neurons 33
usage_error "option --page-neurons: 0 is out of range" convert "$T/src" --page-neurons 0
usage_error "option --page-neurons: '64k' is not an integer" convert "$T/src" --page-neurons 64k
usage_error "option --mem-budget: .*'abc'" convert "$T/src" --mem-budget abc
usage_error "--quant q3: expected q4, .*f32" convert "$T/src" --quant q3
usage_error "option --port: .*70000" serve "$M" --port 70000
usage_error "option -np: .*'x'" serve "$M" -np x
usage_error "option --body-bytes-max: .*'1Q'" serve "$M" --body-bytes-max 1Q
usage_error "option -c: .*'ten'" info "$M" -c ten

# ---- the llama.cpp spellings that mean "default" are accepted while parsing ---------------
# (-n -1 / -2, --seed -1, --repeat-last-n -1): parsing passes, the missing model is exit 1
for a in "-n -1" "-n -2" "--seed -1" "--repeat-last-n -1" "--temp 0" "--top-k 0" "--top-p 1"; do
    # shellcheck disable=SC2086
    "$V" run "$M" hello $a >/dev/null 2>"$T/err" </dev/null; rc=$?
    [ "$rc" = 1 ] && grep -q "none.vib3" "$T/err" && ok || { bad "run $a: exit $rc, wanted 1 (no such model)"; head -2 "$T/err"; }
done

# ---- "--" ends the options: a prompt may start with '-' ----------------------------------
"$V" run -n 1 -- "$M" "-not-an-option" >/dev/null 2>"$T/err" </dev/null; rc=$?
[ "$rc" = 1 ] && grep -q "none.vib3" "$T/err" && ok || { bad "run -- MODEL -PROMPT: exit $rc"; head -2 "$T/err"; }
usage_error "unexpected argument 'three'" run -- "$M" two three

# ---- llama.cpp's -m/--model ------------------------------------------------------------------
for c in run serve perplexity; do
    usage_error "option -m needs a value" $c -m
    usage_error "option --model needs a value" $c --model
done
for a in "-m $M hello" "hello -m $M" "--model=$M -p hello"; do
    # shellcheck disable=SC2086
    "$V" run $a -n 1 >/dev/null 2>"$T/err" </dev/null; rc=$?
    [ "$rc" = 1 ] && grep -q "none.vib3" "$T/err" && ok || { bad "run $a: exit $rc"; head -2 "$T/err"; }
done
usage_error "two models" run a -m b -m c
usage_error "unknown option -ngl: .*--vram-budget" run "$M" hello -ngl 99
"$V" perplexity -m "$M" -f x >/dev/null 2>"$T/err"; rc=$?
[ "$rc" = 1 ] && grep -q "none.vib3" "$T/err" && ok || { bad "perplexity -m: exit $rc"; head -2 "$T/err"; }

# ---- settings of other commands are refused, not ignored ----------------------------------
usage_error "unknown option --port" run "$M" hello --port 9
usage_error "unknown option --page-neurons" run "$M" hello --page-neurons 64
usage_error "unknown (option|argument) '--ram-budget'" hw --ram-budget 1G
usage_error "unknown (option|argument) '--threads'" info "$M" --threads 2
usage_error "unknown option --evict" convert "$T/src" --evict lru
usage_error "unknown option '--ctx-size'" pull tinymix --ctx-size 5
usage_error "unknown option '--threads'" list --threads 2
usage_error "unexpected argument 'extra'" list extra
usage_error "unknown option '--parallel'" rm x --parallel 2

# ---- --home works where the store is read ---------------------------------------------------
mkdir -p "$T/other/models"
"$V" list --json --home "$T/other" >"$T/out" 2>"$T/err" && [ "$(cat "$T/out")" = "[]" ] && ok || bad "list --home: $(cat "$T/err")"
"$V" list --home="$T/other" >"$T/out" 2>&1 && grep -q "$T/other/models" "$T/out" && ok || bad "list --home=: $(cat "$T/out")"

# ---- --help: only the command's own options, each once, one aligned column ---------------
# option lines are "  -x, --long ARG   description": the description starts at column 26
# (1-based) on every line of every command, as in the virtual-expert block of run/perplexity
for c in run perplexity convert serve info hw pull list rm; do
    "$V" $c --help >"$T/help" 2>&1 || { bad "$c --help exit"; continue; }
    dups=$(grep -E '^  -' "$T/help" | sed -E 's/^  //; s/  +.*//; s/ [A-Z][A-Za-z|.]*$//; s/ [a-z0-9]+(\|[a-z0-9]+)+$//' |
           tr ',' '\n' | sed 's/^ *//; s/ .*//' | grep -E '^-' | sort | uniq -d)
    [ -z "$dups" ] && ok || bad "$c --help lists $dups more than once"
    misaligned=$(grep -E '^  -' "$T/help" | awk 'length($0) > 25 && (substr($0, 25, 1) != " " || substr($0, 26, 1) == " ") { print }')
    [ -z "$misaligned" ] && ok || { bad "$c --help: option lines off the description column:"; echo "$misaligned" | head -5; }
done
# settings that do not apply are not offered
for c in convert hw list rm pull; do
    "$V" $c --help >"$T/help" 2>&1
    ! grep -Eq -- '--evict|--prefetch|--io-uring|--batch-size|--ram-budget|--vram-budget|--ctx-size' "$T/help" && ok ||
        bad "$c --help shows engine settings"
done
"$V" info --help >"$T/help" 2>&1
! grep -Eq -- '--evict|--prefetch|--io-uring|--batch-size|--threads' "$T/help" && ok || bad "info --help shows run settings"
"$V" hw --help >"$T/help" 2>&1
! grep -Eq -- '--ram-budget|--threads|--ctx-size' "$T/help" && ok || bad "hw --help shows engine settings"
"$V" convert --help >"$T/help" 2>&1
! grep -Eq -- '--ram-budget|--ctx-size|--evict' "$T/help" && ok || bad "convert --help shows run settings"
"$V" perplexity --help >"$T/help" 2>&1
[ "$(grep -c -- '--ctx-size' "$T/help")" = 1 ] && ok || bad "perplexity --help: --ctx-size not listed exactly once"
# bench kernels uses only -t: it neither lists nor takes the engine's memory / storage settings
"$V" bench kernels --help >"$T/help" 2>&1
! grep -Eq -- '--ram-budget|--evict|--prefetch|--io-uring|--ctx-size' "$T/help" && ok || bad "bench kernels --help shows engine settings"
grep -q -- '--threads' "$T/help" && ok || bad "bench kernels --help lacks --threads"
usage_error "unknown argument '--evict'" bench kernels --evict lru
# every option a command's --help lists is accepted by it (missing value => "needs a value", not "unknown")
for c in run perplexity serve info pull; do
    "$V" $c --help 2>&1 | grep -E '^  -' | grep -E '^  (-[a-z]+, )?--?[a-z-]+ [A-Za-z<|]' |
        sed -E 's/^  (-[a-z]+, )?//; s/ .*//' | grep -v '^--ve-' >"$T/opts"
    while read -r o; do
        "$V" $c "$M" "$o" >/dev/null 2>"$T/err" </dev/null
        grep -q "unknown option" "$T/err" && bad "$c --help lists $o but $c rejects it" || ok
    done <"$T/opts"
done

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
