#!/bin/bash
# ab-servers.sh: an A/B of runtime settings on the three example servers,
# the settings alternated round by round so that both see the same minutes
# of a noisy machine.
#
#   scripts/ab-servers.sh BUILD_DIR ROUNDS "ENV A" "ENV B" ...
#   e.g. scripts/ab-servers.sh build-release 3 "HIVE_DEFER_TASKRUN=0" "HIVE_DEFER_TASKRUN=1"
#
# Per run: echo (recv_async) under bench/echo-load -c 50 for 3 s, http_hello
# under wrk -c 50 for 3 s, kv under redis-benchmark -t get -n 100000 -c 50;
# prints requests/s. Needs wrk and redis-benchmark (make deps-servers).
# Every server is started on a free loopback port and stopped by its pid.
set -u
B=$(cd "${1:?usage: ab-servers.sh BUILD_DIR ROUNDS ENV...}" && pwd)
ROUNDS=${2:?rounds}
shift 2
[ $# -ge 1 ] || { echo "ab-servers.sh: give at least one setting" >&2; exit 2; }

one() { # SETTINGS KIND SERVER-COMMAND...
    local env="$1" kind="$2"; shift 2
    local out; out=$(mktemp)
    env $env "$@" --port 0 > "$out" 2>&1 &
    local pid=$! port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening on .*:\([0-9]*\)$/\1/p' "$out")
        [ -n "$port" ] && break
        sleep 0.05
    done
    if [ -z "$port" ]; then echo "ab-servers.sh: $* did not start: $(cat "$out")" >&2; kill $pid; rm -f "$out"; return 1; fi
    local rate
    case $kind in
    echo) rate=$(timeout 20 "$B/bench/echo-load" --port "$port" --conns 50 --duration 3 |
                 grep -o '"rps":[0-9.]*' | cut -d: -f2) ;;
    http) rate=$(timeout 20 wrk -t2 -c50 -d3s "http://127.0.0.1:$port/" | awk '/Requests\/sec/{print $2}') ;;
    kv)   rate=$(timeout 60 redis-benchmark -p "$port" -t get -n 100000 -c 50 -q |
                 tr '\r' '\n' | awk '/per second/{print $2}') ;;
    esac
    kill -TERM $pid; wait $pid 2>/dev/null; rm -f "$out"
    printf '%-5s %-40s %10.0f req/s\n' "$kind" "[$env]" "${rate:-0}"
}

for r in $(seq "$ROUNDS"); do
    for env in "$@"; do
        one "$env" echo "$B/examples/echo" --style async
        one "$env" http "$B/examples/http_hello"
        one "$env" kv "$B/examples/kv"
    done
done
