#!/bin/sh
# test_neon.sh — cross-compiles the simd kernels (scalar reference, dispatch,
# NEON + dotprod + fp16) with the kernel, Q4_K16 and thread-pool tests for aarch64 and
# runs them under qemu-aarch64. Last line: "N passed, N failed, N skipped".
# Skips (0 passed, 0 failed, 1 skipped) only when the cross compiler or qemu
# is missing (Debian: gcc-aarch64-linux-gnu, qemu-user).
CC=${NEON_CC:-aarch64-linux-gnu-gcc}
QEMU=${NEON_QEMU:-qemu-aarch64}
SYSROOT=${NEON_SYSROOT:-/usr/aarch64-linux-gnu}
OUT=${BUILD:-build}/neon
if ! command -v "$CC" >/dev/null 2>&1 || ! command -v "$QEMU" >/dev/null 2>&1; then
    echo "skipped: NEON tests need $CC and $QEMU (apt install gcc-aarch64-linux-gnu qemu-user)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
mkdir -p "$OUT" || exit 1
FLAGS="-O2 -g -std=c11 -D_GNU_SOURCE -pthread -Wall -Wextra -Werror -Wno-unused-parameter -I. -Isrc -fno-strict-aliasing"
LIBSRC="simd/dispatch.c simd/kernels_ref.c simd/rope.c src/core/err.c src/core/threadpool.c src/format/dtype.c tests/harness.c"
pass=0; fail=0; skip=0
build_ok=1
$CC $FLAGS -march=armv8.2-a+dotprod+fp16 -c simd/kernels_neon.c -o "$OUT/kernels_neon.o" || build_ok=0
for t in test_kernels test_threadpool test_q4k16; do
    if [ $build_ok = 1 ] && $CC $FLAGS -static -o "$OUT/$t" tests/simd/$t.c $LIBSRC "$OUT/kernels_neon.o" -lm; then
        "$QEMU" -L "$SYSROOT" "$OUT/$t" > "$OUT/$t.log" 2>&1
        rc=$?
        cat "$OUT/$t.log"
        line=$(grep -E '[0-9]+ passed, [0-9]+ failed' "$OUT/$t.log" | tail -n 1)
        p=$(echo "$line" | sed -nE 's/.*[^0-9]([0-9]+) passed.*/\1/p')
        f=$(echo "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
        s=$(echo "$line" | sed -nE 's/.* ([0-9]+) skipped.*/\1/p')
        if [ -z "$line" ] || { [ $rc -ne 0 ] && [ "${f:-0}" -eq 0 ]; }; then f=1; fi
        pass=$((pass + ${p:-0})); fail=$((fail + ${f:-0})); skip=$((skip + ${s:-0}))
    else
        echo "FAIL: cross build of $t"
        fail=$((fail + 1))
    fi
done
grep -q 'best neon' "$OUT/test_kernels.log" 2>/dev/null || { echo "FAIL: the neon variant was not selected under qemu"; fail=$((fail + 1)); }
echo "$pass passed, $fail failed, $skip skipped"
[ $fail -eq 0 ]
