#!/bin/sh
# Installs the built tree into a scratch prefix, checks the installed
# libhive.so's ABI (exports only hive_* symbols, soname libhive.so.HIVE_ABI_VERSION) and
# builds a tiny program against the installed copy both ways: pkg-config
# and CMake find_package.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$top/$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib* | head -n 1)
libdir=$(find "$tmp/prefix" -name 'libhive.so' -printf '%h\n' | head -n 1)
lib="$libdir/libhive.so"

echo "== exported symbols"
# Every defined dynamic symbol but weak ones (w/W/v/V) and the linker's own
# markers must be public API: hive_*. Internal functions are hidden
# (C_VISIBILITY_PRESET hidden, HIVE_API in include/hive.h).
offenders=$(nm -D --defined-only "$lib" | awk '
    NF >= 3 && $2 !~ /^[wWvV]$/ && $3 !~ /^hive_/ &&
    $3 !~ /^(_init|_fini|__bss_start|_edata|_end|__end__|_etext|_DYNAMIC|_GLOBAL_OFFSET_TABLE_)$/ {
        print "  " $2 " " $3
    }')
if [ -n "$offenders" ]; then
    echo "libhive.so exports symbols outside the public API (hive_*):" >&2
    echo "$offenders" >&2
    exit 1
fi
echo "$(nm -D --defined-only "$lib" | awk '$3 ~ /^hive_/' | wc -l) symbols, all hive_*"

echo "== soname"
abi=$(sed -n 's/^set(HIVE_ABI_VERSION \([0-9][0-9]*\)).*/\1/p' "$top/CMakeLists.txt")
soname=$(objdump -p "$lib" | awk '$1 == "SONAME" { print $2 }')
if [ -z "$abi" ] || [ "$soname" != "libhive.so.$abi" ]; then
    echo "libhive.so has soname '$soname', expected libhive.so.${abi:-?} (HIVE_ABI_VERSION)" >&2
    exit 1
fi
echo "$soname"

cat > "$tmp/hello.c" <<'C'
#include <hive.h>
#include <stdio.h>
static void hello(void *arg) {
    hive_msg *m;
    hive_send(hive_self(), 1, "hi", 3);
    if (hive_receive(&m, 1000) == 0) { printf("installed hive says %s\n", (char *)m->data); hive_msg_free(m); }
    *(int *)arg = 1;
}
int main(void) {
    int ok = 0;
    hive_config cfg; hive_config_default(&cfg); cfg.schedulers = 1; cfg.pin = false;
    return hive_main(&cfg, hello, &ok) == 0 && ok ? 0 : 1;
}
C

echo "== pkg-config (shared)"
PKG_CONFIG_PATH="$libdir/pkgconfig" cc -o "$tmp/hello-pc" "$tmp/hello.c" \
    $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --cflags --libs hive)
LD_LIBRARY_PATH="$libdir" "$tmp/hello-pc"

echo "== pkg-config (static)"
cc -o "$tmp/hello-static" "$tmp/hello.c" \
    $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --static --cflags hive) \
    "$libdir/libhive.a" $(PKG_CONFIG_PATH="$libdir/pkgconfig" pkg-config --static --libs-only-l hive | sed 's/-lhive//')
"$tmp/hello-static"

echo "== CMake find_package(hive)"
mkdir -p "$tmp/cm"
cp "$tmp/hello.c" "$tmp/cm/"
cat > "$tmp/cm/CMakeLists.txt" <<'CM'
cmake_minimum_required(VERSION 3.25)
project(hello C)
find_package(hive REQUIRED)
add_executable(hello hello.c)
target_link_libraries(hello PRIVATE hive::hive)
CM
cmake -S "$tmp/cm" -B "$tmp/cm/build" -DCMAKE_PREFIX_PATH="$tmp/prefix" >/dev/null
cmake --build "$tmp/cm/build" >/dev/null
LD_LIBRARY_PATH="$libdir" "$tmp/cm/build/hello"
echo "install test: ok"
