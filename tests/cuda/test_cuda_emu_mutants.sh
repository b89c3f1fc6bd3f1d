#!/bin/sh
# tests/cuda/test_cuda_emu_mutants.sh — shows that test_cuda_emu's bit-identity checks of the
# Q4_K16 CUDA kernels catch decoding mistakes: each mutant is a copy of cuda/page_kernels.h with
# one plausible bug (a wrong nibble, sub-scale or sub-min bit, d / dmin swapped, the super-block
# stride or a tail super-block's head miscounted, groups or sums crossed, the f32 products
# reassociated: (d_x d) S - (d_x dmin) T instead of the reference's d_x (d S - dmin T)); tests/cuda/test_cuda_emu.c
# is compiled against it (the copy shadows the real header through -I) and its q4_k16 tests must
# FAIL. The unmutated copy must pass, and every mutation must change the header (a sed that no
# longer matches the source is a failure here, not a silently vacuous mutant).
# Needs $BUILD/libvib3.a (make builds it before the tests run); prints "N passed, N failed, N skipped".
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd) || exit 1
cd "$ROOT" || exit 1
BUILD=${BUILD:-build}
LIB=$BUILD/libvib3.a
CC=${CC:-cc}
if [ ! -f "$LIB" ]; then
    echo "SKIP: $LIB not built (make BUILD=$BUILD first)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
LIBS="-luring -lsleef -lxxhash -lpcre2-8 -lmicrohttpd -lcurl -lm -lpthread -ldl"
if ar t "$LIB" | grep -q '\.cu\.o$'; then # a CUDA=1 library: its other objects may need cudart
    LIBS="$LIBS -L${CUDA_HOME:-/usr/local/cuda}/lib64 -Wl,-rpath,${CUDA_HOME:-/usr/local/cuda}/lib64 -lcudart -lstdc++"
fi
CFL="-std=c11 -D_GNU_SOURCE -pthread -O1 -w -fno-strict-aliasing"
mkdir -p "$tmp/cuda"
# shellcheck disable=SC2086 # CFL is a list
$CC $CFL -I. -Isrc -c tests/harness.c -o "$tmp/harness.o" || { echo "FAIL harness build"; echo "0 passed, 1 failed"; exit 1; }

pass=0
fail=0
# build and run the emulation test against $tmp/cuda/page_kernels.h; prints the exit status
run_emu() {
    # shellcheck disable=SC2086
    $CC $CFL -I"$tmp" -I. -Isrc -o "$tmp/emu" tests/cuda/test_cuda_emu.c "$tmp/harness.o" "$LIB" $LIBS \
        >"$tmp/cc.log" 2>&1 || { echo build; return; }
    "$tmp/emu" q4_k16 >"$tmp/run.log" 2>&1
    echo $?
}

cp cuda/page_kernels.h "$tmp/cuda/page_kernels.h"
r=$(run_emu)
if [ "$r" = 0 ]; then
    pass=$((pass + 1)); echo "ok   unmutated kernels pass"
else
    fail=$((fail + 1)); echo "FAIL unmutated kernels: $r"; tail -n 20 "$tmp/cc.log" "$tmp/run.log"
fi

# name|sed script (applied to cuda/page_kernels.h; must change the lines it names)
while IFS='|' read -r name expr; do
    [ -n "$name" ] || continue
    sed "$expr" cuda/page_kernels.h >"$tmp/cuda/page_kernels.h"
    changed=$(diff cuda/page_kernels.h "$tmp/cuda/page_kernels.h" | grep -c '^>')
    want=$(echo "$expr" | tr ';' '\n' | grep -c '^s')
    if [ "$changed" != "$want" ]; then
        fail=$((fail + 1)); echo "FAIL mutant $name: the sed changed $changed lines (the kernel source moved on?)"
        continue
    fi
    r=$(run_emu)
    case $r in
    0) fail=$((fail + 1)); echo "FAIL mutant $name survived: the emulation test passed with it" ;;
    build) fail=$((fail + 1)); echo "FAIL mutant $name does not compile"; tail -n 5 "$tmp/cc.log" ;;
    *) pass=$((pass + 1)); echo "ok   mutant $name caught (exit $r, $(grep -c 'differ' "$tmp/run.log") mismatch reports)" ;;
    esac
done <<'EOF'
high-nibble-as-low|s/s1 += (qs\[j\] >> 4) \* xs\[j + 16\];/s1 += (qs[j] \& 15) * xs[j + 16];/
low-nibble-3-bits|s/s0 += (qs\[j\] & 15) \* xs\[j\];/s0 += (qs[j] \& 7) * xs[j];/
sc1-5-bits|s/sc1 = sm\[1\] & 63/sc1 = sm[1] \& 31/
mn0-from-sm0|s/mn0 = sm\[2\] & 63/mn0 = sm[0] \& 63/
mn1-bit-order|s/((sm\[1\] >> 6) << 2)/((sm[1] >> 6) << 3)/
dmin-as-d|s/pk_f16(sb + 2)/pk_f16(sb)/
groups-crossed|s/(float)(sc0 \* s0 + sc1 \* s1)/(float)(sc0 * s1 + sc1 * s0)/
t1-wrong-half|s/t1 += xs\[j + 16\];/t1 += xs[j];/
super-stride-no-head|s/^#define K16_SUPER_BYTES (K16_HEAD_BYTES + /#define K16_SUPER_BYTES (0 + /
chunk-stride-18|s/(b % K16_SUPER_CHUNKS) \* K16_CHUNK_BYTES/(b % K16_SUPER_CHUNKS) * 18u/
tail-head-floor|s/((n + 255u) \/ 256u)/(n \/ 256u)/
scales-first|s/return __fmul_rn(pk_f16(x), __fsub_rn(__fmul_rn(pk_f16(sb), /return __fsub_rn(__fmul_rn(__fmul_rn(pk_f16(x), pk_f16(sb)), /;s/ __fmul_rn(pk_f16(sb + 2), (float)(mn0 \* t0 + mn1 \* t1))));/ __fmul_rn(__fmul_rn(pk_f16(x), pk_f16(sb + 2)), (float)(mn0 * t0 + mn1 * t1)));/
EOF
echo "test_cuda_emu_mutants: $pass passed, $fail failed, 0 skipped"
[ "$fail" = 0 ]
