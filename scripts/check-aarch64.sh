#!/bin/sh
# Cross-builds the context-switch self test for aarch64 and runs it under
# qemu (needs gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user).
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/main.c" <<'C'
#include <stdio.h>
#include "tests/ctx_selftest.h"
int main(void) { int e = ctx_selftest(); printf("aarch64 context switch: %d errors\n", e); return e != 0; }
C
aarch64-linux-gnu-gcc -O2 -static -I"$top" -I"$top/include" -o "$tmp/selftest" \
    "$tmp/main.c" "$top/runtime/sched/ctx.c" "$top/runtime/sched/ctx_aarch64.S"
qemu-aarch64 "$tmp/selftest"

# Then compiles every library source for aarch64 (no link: the runtime needs
# io_uring, which qemu-user does not offer), which catches x86-only code.
# liburing's and jemalloc's headers are the same on both architectures.
mkdir "$tmp/inc"
for h in liburing.h liburing jemalloc valgrind; do
    [ -e "/usr/include/$h" ] && ln -s "/usr/include/$h" "$tmp/inc/$h"
done
n=0
for f in "$top"/runtime/*.c "$top"/runtime/*/*.c "$top"/alloc/*.c "$top"/io/*.c; do
    aarch64-linux-gnu-gcc -std=gnu11 -D_GNU_SOURCE -O2 -Wall -Werror -c \
        -I"$top" -I"$top/include" -isystem "$tmp/inc" -o "$tmp/obj.o" "$f"
    n=$((n + 1))
done
echo "aarch64: $n library sources compile"
