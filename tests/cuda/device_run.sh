#!/bin/sh
# tests/cuda/device_run.sh — the T1 (CUDA tier) check for a machine with an NVIDIA GPU, one command:
#
#   sh tests/cuda/device_run.sh [build] [test] [bench]      (no argument = all three)
#   BUILD=build-cuda-carry sh tests/cuda/device_run.sh bundle
#
#   bundle (on the machine WITHOUT the GPU, where nvcc and the -dev packages are): build with
#          CUDA=1 and copy the binaries the other stages use plus the shared libraries they need
#          (liburing, sleef, curl and its deps, cudart, ...) into $BUILD (lib/ for the libraries),
#          a few tens of MB to carry to a bare GPU machine; there run the test and bench stages
#          with the same BUILD (lib/ goes on LD_LIBRARY_PATH).
#
#   build  make CUDA=1 into $BUILD (default build-cuda-dev): vib3, tests/cuda/test_cuda, gen_models
#   test   the device tests of tests/cuda/test_cuda.c (Q4_0 and Q4_K16 kernels vs the CPU references
#          on odd page shapes and in batches, promotion + lookup, whole-model greedy == CPU on q4_0
#          and q4_k16 models, forced CUDA error -> CPU), the emulation / mock tests of the build
#   bench  decode tok/s, CPU vs GPU tier, on tinymix and on a generated Mixtral-shaped model
#          (hidden 4096, ffn 14336, 8 experts top-2, $MIXTRAL_LAYERS layers), each converted with
#          every --quant of $QUANTS (default "q4 q4_0": the converter's default INT4, Q4_K16, and Q4_0):
#          the in-process table of test_cuda's bench_decode_cpu_vs_gpu_tier (which also checks
#          the four greedy token sequences agree) and `vib3 bench -p 0` rows with the tier off
#          (CUDA_VISIBLE_DEVICES=) and on, on the frames backend and on the default one.
#
# Env: BUILD, JOBS (make -j, default nproc), THREADS (decode threads, default nproc), N_GEN (timed
# tokens, default 64), QUANTS (default "q4 q4_0"), MIXTRAL_LAYERS (default 2; each layer is 2.8 GB
# of BF16 to generate and ~0.8 GB of Q4_0 / ~0.86 GB of Q4_K16 pages), MIXTRAL_DIMS (hidden:ffn:experts, default 4096:14336:8; small values
# check the script itself on a machine without a GPU), BENCH_DIR (models, default $BUILD/cuda-bench; reused when present),
# VIB3_MODELS (the shared models directory; default ../shared/models or ./shared/models).
# Exit status: 0 when every stage run passed, 1 when a stage failed, 2 when the machine cannot
# run it (no nvcc and no prebuilt binaries, missing shared libraries).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd) || exit 2
cd "$ROOT" || exit 2
BUILD=${BUILD:-build-cuda-dev}
NPROC=$(nproc 2>/dev/null || echo 4)
JOBS=${JOBS:-$NPROC}
THREADS=${THREADS:-$NPROC}
N_GEN=${N_GEN:-64}
MIXTRAL_LAYERS=${MIXTRAL_LAYERS:-2}
MIXTRAL_DIMS=${MIXTRAL_DIMS:-4096:14336:8}
QUANTS=${QUANTS:-q4 q4_0}
BENCH_DIR=${BENCH_DIR:-$BUILD/cuda-bench}
if [ -z "${VIB3_MODELS:-}" ]; then
    for d in "$ROOT/../shared/models" "$ROOT/shared/models"; do [ -d "$d" ] && VIB3_MODELS=$d && break; done
fi
export BUILD VIB3_MODELS
STAGES=${*:-build test bench}
# CPU-path tests that also run the CUDA build with a device present (the buffer manager opens the pool)
EXTRA_TESTS="$BUILD/tests/cuda/test_cuda_mock $BUILD/tests/storage/test_pages $BUILD/tests/runtime/test_noalloc $BUILD/tests/runtime/test_forward"
status=0
no_device=0

say() { echo; echo "== $* ($(date -u +%H:%M:%S) UTC, load avg $(cut -d' ' -f1-3 /proc/loadavg))"; }

if [ "$STAGES" = bundle ]; then
    SRC=${BUNDLE_FROM:-$BUILD.full}
    say "bundle: make CUDA=1 BUILD=$SRC, then binaries + shared libraries into $BUILD"
    FILES="vib3 tests/cuda/test_cuda tests/cuda/test_cuda_emu tests/cuda/test_cuda_mock tests/storage/test_pages tests/runtime/test_noalloc
           tests/runtime/test_forward tools/gen_models"
    targets=""
    for f in $FILES; do targets="$targets $SRC/$f"; done
    # shellcheck disable=SC2086 # targets is a list
    make --no-print-directory CUDA=1 BUILD="$SRC" -j"$JOBS" $targets >"$SRC.make.log" 2>&1 ||
        { tail -n 30 "$SRC.make.log"; echo "build FAILED"; exit 1; }
    rm -rf "$BUILD" && mkdir -p "$BUILD/lib" || exit 2
    for f in $FILES; do
        mkdir -p "$BUILD/$(dirname "$f")" && cp "$SRC/$f" "$BUILD/$f" || exit 2
        # every resolved library but glibc's own and the dynamic loader
        ldd "$SRC/$f" | awk '$3 ~ /^\// {print $3}' | grep -Ev '/(libc|libm|libdl|libpthread|librt|ld-linux[^/]*)\.so' |
            while read -r lib; do cp -Ln "$lib" "$BUILD/lib/" 2>/dev/null || true; done
    done
    du -sh "$BUILD"; ls "$BUILD/lib"
    echo "carry $BUILD; on the GPU machine: BUILD=$BUILD sh tests/cuda/device_run.sh test bench"
    exit 0
fi
if [ -d "$BUILD/lib" ]; then # a bundle: its libraries first
    LD_LIBRARY_PATH=$(cd "$BUILD/lib" && pwd)${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    export LD_LIBRARY_PATH
fi

say "device"
if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi --query-gpu=name,memory.total,memory.free,driver_version --format=csv,noheader
else
    echo "no nvidia-smi on PATH"
fi
echo "cpu: $NPROC cores; $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"

case " $STAGES " in *" build "*)
    say "build (make CUDA=1 BUILD=$BUILD -j$JOBS)"
    if [ -x "${CUDA_HOME:-/usr/local/cuda}/bin/nvcc" ] || command -v nvcc >/dev/null 2>&1; then
        # shellcheck disable=SC2086 # EXTRA_TESTS is a list
        make --no-print-directory CUDA=1 BUILD="$BUILD" -j"$JOBS" "$BUILD/vib3" "$BUILD/tests/cuda/test_cuda" \
            "$BUILD/tests/cuda/test_cuda_emu" $EXTRA_TESTS "$BUILD/tools/gen_models" >"$BUILD.make.log" 2>&1 ||
            { tail -n 30 "$BUILD.make.log"; echo "build FAILED"; exit 1; }
        echo "built (log: $BUILD.make.log)"
    elif [ -x "$BUILD/vib3" ] && [ -x "$BUILD/tests/cuda/test_cuda" ]; then
        echo "no nvcc here: using the prebuilt $BUILD (carried from a machine with nvcc)"
    else
        echo "no nvcc and no prebuilt $BUILD/vib3: build with 'make CUDA=1 BUILD=$BUILD' where nvcc is and carry $BUILD"
        exit 2
    fi
    ;;
esac

for b in "$BUILD/vib3" "$BUILD/tests/cuda/test_cuda"; do
    [ -x "$b" ] || { echo "$b missing: run the build stage"; exit 2; }
    missing=$(ldd "$b" 2>/dev/null | grep 'not found')
    [ -z "$missing" ] || { echo "$b: shared libraries missing on this machine:"; echo "$missing"; exit 2; }
done
cuda_line=$("$BUILD/vib3" hw | grep -i '^cuda')
echo "$cuda_line"
case "$cuda_line" in
*"device(s)"*) ;;
*) echo "WARNING: vib3 sees no CUDA device: the device tests SKIP and 'tier on' runs on the CPU"; no_device=1 ;;
esac

case " $STAGES " in *" test "*)
    say "tests/cuda/test_cuda"
    "$BUILD/tests/cuda/test_cuda" || status=1
    for t in "$BUILD/tests/cuda/test_cuda_emu" $EXTRA_TESTS; do
        [ -x "$t" ] || { echo "$t: not built"; continue; }
        say "$t (CUDA build)"
        "$t" >"$BUILD/cuda-test.log" 2>&1 || { status=1; grep -A3 '^FAIL' "$BUILD/cuda-test.log"; }
        tail -n 1 "$BUILD/cuda-test.log"
    done
    ;;
esac

case " $STAGES " in *" bench "*)
    say "bench models ($BENCH_DIR)"
    mkdir -p "$BENCH_DIR" || exit 2
    # every model in each of $QUANTS: "q4" is the converter's default INT4 (Q4_K16 for BF16 sources),
    # q4_0 the older Q4_0 pages; the name says which (and vib3 info prints the expert dtype)
    MX_BASE=$BENCH_DIR/mixtral-shaped-$(echo "$MIXTRAL_DIMS" | tr : -)-l$MIXTRAL_LAYERS
    list=""
    mx_missing=""
    for qn in $QUANTS; do
        tag=$([ "$qn" = q4 ] && echo default || echo "$qn")
        TM=$BENCH_DIR/tinymix-$tag.vib3
        if [ ! -f "$TM" ] && [ -d "${VIB3_MODELS:-/nonexistent}/tinymix-brown" ]; then
            "$BUILD/vib3" convert --model "$VIB3_MODELS/tinymix-brown" --output "$TM" --quant "$qn" --quiet || rm -f "$TM"
        fi
        if [ -f "$TM" ]; then
            list="$list tinymix-$tag=$TM"
            "$BUILD/vib3" info "$TM" | grep -m1 quantization | sed "s|^|tinymix-$tag: |"
        else
            echo "tinymix-$tag: no ${VIB3_MODELS:-shared models}/tinymix-brown or conversion failed; skipped"
        fi
        [ -f "$MX_BASE-$tag.vib3" ] || mx_missing="$mx_missing $qn"
    done
    if [ -n "$mx_missing" ]; then
        [ -x "$BUILD/tools/gen_models" ] || make --no-print-directory BUILD="$BUILD" CUDA=1 "$BUILD/tools/gen_models" >/dev/null
        rm -rf "$BENCH_DIR/gen"
        echo "generating the Mixtral-shaped model ($MIXTRAL_DIMS, $MIXTRAL_LAYERS layers) ..."
        t0=$(date +%s)
        if "$BUILD/tools/gen_models" "$BENCH_DIR/gen" "hf:mixtral:bf16:1:$MIXTRAL_DIMS:$MIXTRAL_LAYERS" >/dev/null; then
            for qn in $mx_missing; do
                tag=$([ "$qn" = q4 ] && echo default || echo "$qn")
                "$BUILD/vib3" convert --model "$BENCH_DIR/gen/mixtral-bf16" --output "$MX_BASE-$tag.vib3" --quant "$qn" \
                    --quiet || { echo "mixtral-shaped: conversion --quant $qn FAILED"; rm -f "$MX_BASE-$tag.vib3"; status=1; }
            done
            echo "generated and converted in $(( $(date +%s) - t0 )) s"
        else
            echo "mixtral-shaped: generation FAILED"; status=1
        fi
        rm -rf "$BENCH_DIR/gen"
    fi
    for qn in $QUANTS; do
        tag=$([ "$qn" = q4 ] && echo default || echo "$qn")
        MX=$MX_BASE-$tag.vib3
        [ -f "$MX" ] || continue
        list="$list mixtral-shaped-$tag=$MX"
        "$BUILD/vib3" info "$MX" | sed -n '1,6p'
    done
    list=${list# }

    if [ -n "$list" ]; then
        say "decode: CPU vs GPU tier, in process (test_cuda bench_decode_cpu_vs_gpu_tier, $THREADS threads, $N_GEN tokens)"
        VIB3_CUDA_BENCH="$list" VIB3_CUDA_BENCH_N="$N_GEN" VIB3_CUDA_BENCH_THREADS="$THREADS" \
            "$BUILD/tests/cuda/test_cuda" bench_decode_cpu_vs_gpu_tier || status=1

        say "decode: vib3 bench -p 0 -n $N_GEN -r 3 -t $THREADS (frames backend; tier off = CUDA_VISIBLE_DEVICES=)"
        for m in $list; do
            name=${m%%=*}; path=${m#*=}
            printf '%s, tier off: ' "$name"
            CUDA_VISIBLE_DEVICES='' VIB3_PAGES_BACKEND=frames VIB3_EXPERT_BUDGET=100% \
                "$BUILD/vib3" bench "$path" -p 0 -n "$N_GEN" -r 3 -t "$THREADS" 2>&1 | grep '| tg' || status=1
            printf '%s, tier on:  ' "$name"
            VIB3_PAGES_BACKEND=frames VIB3_EXPERT_BUDGET=100% \
                "$BUILD/vib3" bench "$path" -p 0 -n "$N_GEN" -r 3 -t "$THREADS" 2>&1 | grep '| tg' || status=1
            printf '%s, default backend, tier off: ' "$name"
            CUDA_VISIBLE_DEVICES='' "$BUILD/vib3" bench "$path" -p 0 -n "$N_GEN" -r 3 -t "$THREADS" 2>&1 | grep '| tg' ||
                status=1
            printf '%s, default backend, tier on:  ' "$name"
            "$BUILD/vib3" bench "$path" -p 0 -n "$N_GEN" -r 3 -t "$THREADS" 2>&1 | grep '| tg' || status=1
        done
    fi
    ;;
esac

[ $status = 0 ] && [ $no_device = 1 ] && status=2
say "done: $(case $status in 0) echo PASS ;; 1) echo FAIL ;; *) echo 'NOT RUN: no CUDA device' ;; esac)"
exit $status
