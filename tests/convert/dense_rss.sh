#!/bin/sh
# tests/convert/dense_rss.sh — peak RSS of `vib3 convert` on a generated model
# whose embedding and LM head are each far larger than --mem-budget (the
# streamed dense-tensor path, src/convert/dense.c). Not part of `make test`
# (it writes a multi-GB model); test_convert_stream.c runs a 256 MiB version.
#
#   sh tests/convert/dense_rss.sh [VOCAB] [HIDDEN] [BUDGET] [QUANTS]
#   defaults: 262144 2048 1G "q4 f32"  (a 2 GiB F32 embedding + a 2 GiB F32 LM head)
#   BUILD=dir picks the build (default build/); OLD=path/to/vib3 measures another
#   binary too (e.g. one built from before the streaming writer).
set -u
BUILD=${BUILD:-build}
VOCAB=${1:-262144}
HIDDEN=${2:-2048}
BUDGET=${3:-1G}
QUANTS=${4:-q4 f32}
TMP=${TMPDIR:-/tmp}/vib3-dense-rss.$$
mkdir -p "$TMP"
trap 'rm -rf "$TMP"' EXIT INT TERM
"$BUILD/tools/gen_models" "$TMP" "hf:llama:f32:1:$HIDDEN:64:0:1:$VOCAB" || exit 1
MODEL="$TMP/llama-f32"
echo "model: llama, hidden $HIDDEN, 1 layer, vocab $VOCAB: $(du -m "$MODEL/model.safetensors" | cut -f1) MB of F32 safetensors"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg)"
for bin in "$BUILD/vib3" ${OLD:-}; do
    for q in $QUANTS; do
        out="$TMP/out.vib3"
        if /usr/bin/time -f "%M %e" -o "$TMP/time" "$bin" convert --model "$MODEL" --output "$out" --quant "$q" \
            --no-calib --mem-budget "$BUDGET" -t 2 --quiet 2>"$TMP/err"; then
            set -- $(cat "$TMP/time")
            echo "$bin --quant $q --mem-budget $BUDGET: peak RSS $(($1 / 1024)) MiB, $2 s, output $(du -m "$out" | cut -f1) MB"
        else
            echo "$bin --quant $q --mem-budget $BUDGET: failed: $(tail -n 1 "$TMP/err")"
        fi
        rm -f "$out"
    done
done
