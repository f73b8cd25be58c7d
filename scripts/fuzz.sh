#!/bin/sh
# Builds the libFuzzer targets of fuzz/ with clang (ASan + UBSan) and runs
# each for SECONDS seconds (default 15) from the seeds in fuzz/corpus/<name>.
# New inputs go to BUILD/corpus-<name>, crashes to BUILD/crash-<name>-*;
# the exit status is non-zero if any target found a crash.
#
# usage: scripts/fuzz.sh [SECONDS] [BUILD_DIR]
set -eu
secs=${1:-15}
out=${2:-build-fuzz}
root=$(cd "$(dirname "$0")/.." && pwd)
cc=${CLANG:-clang}
if ! command -v "$cc" >/dev/null 2>&1; then
    echo "fuzz.sh: $cc not found (Debian: apt-get install clang)" >&2
    exit 1
fi
mkdir -p "$out"
status=0
for t in http:examples/http_parse.c resp:examples/resp.c; do
    name=${t%%:*}
    src=${t#*:}
    bin="$out/fuzz_$name"
    "$cc" -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
          -I"$root" -o "$bin" "$root/fuzz/fuzz_$name.c" "$root/$src"
    mkdir -p "$out/corpus-$name"
    echo "fuzz.sh: fuzz_$name for ${secs}s"
    if ! "$bin" -max_total_time="$secs" -max_len=16384 -print_final_stats=0 \
            -artifact_prefix="$out/crash-$name-" "$out/corpus-$name" \
            "$root/fuzz/corpus/$name" >"$out/fuzz_$name.log" 2>&1; then
        echo "fuzz.sh: fuzz_$name FAILED, see $out/fuzz_$name.log:" >&2
        tail -40 "$out/fuzz_$name.log" >&2
        status=1
    else
        tail -1 "$out/fuzz_$name.log"
    fi
done
exit $status
