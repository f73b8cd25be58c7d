#!/bin/sh
# Checks that every #include in the library points down or sideways.
#
# Rooms, lowest first (a room may include its own headers and those of the
# rooms below it, never above):
#   0  alloc/, io/             memory and the kernel (each on its own)
#   1  runtime/ds/             plain data structures: mailbox, run queue, wheel
#   2  runtime/sched/          the core: schedulers and the switch protocol,
#      runtime/proc/           and what a process does (send, receive, exit,
#                              signals, timers, registry). The two include each
#                              other: a scheduler runs processes, a process asks
#                              its scheduler to run others (libponyrt's actor <->
#                              scheduler edge); nothing else is two-way.
#   3  runtime/otp/            behaviours built on processes
#   4  runtime/*.c             entry points: start/stop, config, introspection
# include/hive.h is the public header: anyone may include it.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

rank() {
    case "$1" in
        alloc/*|io/*)      echo 0 ;;
        runtime/ds/*)      echo 1 ;;
        runtime/sched/*|runtime/proc/*) echo 2 ;;
        runtime/otp/*)     echo 3 ;;
        runtime/*)         echo 4 ;;
        *)                 echo 9 ;;
    esac
}
room() { dirname "$1"; }

bad=0
n=0
for f in $(find alloc io runtime -name '*.[ch]' | sort); do
    fr=$(rank "$f")
    for inc in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f"); do
        n=$((n + 1))
        case "$inc" in
            */*) ;;
            *) echo "check-layers: $f: include \"$inc\" is not written from the project root" >&2
               bad=1; continue ;;
        esac
        if [ ! -f "$inc" ]; then
            echo "check-layers: $f: includes \"$inc\", which does not exist" >&2
            bad=1; continue
        fi
        ir=$(rank "$inc")
        if [ "$ir" -gt "$fr" ]; then
            echo "check-layers: $f (layer $fr) includes $inc (layer $ir): upward" >&2
            bad=1
        elif [ "$ir" -eq "$fr" ] && [ "$fr" -eq 0 ] && [ "$(room "$f")" != "$(room "$inc")" ]; then
            echo "check-layers: $f includes $inc: alloc/ and io/ are independent rooms" >&2
            bad=1
        fi
    done
done
[ $bad -eq 0 ] || exit 1
echo "check-layers: $n includes, every one points down or sideways"
