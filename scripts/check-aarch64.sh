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
    "$tmp/main.c" "$top/runtime/ctx.c" "$top/runtime/ctx_aarch64.S"
qemu-aarch64 "$tmp/selftest"
