#!/bin/sh
# Instructions per operation of hive-bench workloads under callgrind, one
# scheduler: (Ir of the full run - Ir of the --quick run) / (n_full - n_quick),
# so start-up and teardown cancel out. Schedulers spin instead of parking
# (HIVE_SPIN_US=1000000): valgrind does not return from an io_uring_enter
# that waits for a wake-up sent from another thread.
# usage: scripts/callgrind-per-op.sh BUILD_DIR WORKLOAD...
set -eu
bench=$1/bench/hive-bench
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for w in "$@"; do
    for mode in quick full; do
        flag=""; [ $mode = quick ] && flag=--quick
        HIVE_SCHEDULERS=1 HIVE_SPIN_US=1000000 timeout -s KILL 600 \
            valgrind --tool=callgrind --callgrind-out-file="$tmp/cg" "$bench" --only "$w" $flag --json \
            >"$tmp/$mode.json" 2>"$tmp/$mode.err"
        ir=$(sed -n 's/.*I *refs: *//p' "$tmp/$mode.err" | tr -d ,)
        n=$(sed -n 's/.*"n":\([0-9]*\).*/\1/p' "$tmp/$mode.json")
        eval "ir_$mode=$ir n_$mode=$n"
    done
    echo "$w: $(( (ir_full - ir_quick) / (n_full - n_quick) )) instructions per op (n $n_quick -> $n_full)"
done
