# Shared by the server tests: start a server, wait for its "listening on"
# line, stop it by its pid, fail with a message. Sourced by bash scripts.
set -u

fail() {
    echo "FAIL: $*" >&2
    if [ -n "${SRV_PID:-}" ] && kill -0 "$SRV_PID" 2>/dev/null; then
        kill -KILL "$SRV_PID" 2>/dev/null
    fi
    exit 1
}

need() {
    for p in "$@"; do
        command -v "$p" >/dev/null 2>&1 || fail "$p is not installed (make deps-servers installs it)"
    done
}

# start_server BIN ARGS...: runs it in the background, reads its first
# line from a fifo (10 s at most) and sets SRV_PID, SRV_HOST, SRV_PORT.
start_server() {
    SRV_DIR=$(mktemp -d)
    mkfifo "$SRV_DIR/out"
    "$@" >"$SRV_DIR/out" 2>"$SRV_DIR/err" &
    SRV_PID=$!
    exec 9<"$SRV_DIR/out"
    local line=""
    read -r -t 10 -u 9 line || fail "$1: no \"listening on\" line in 10 s: $(cat "$SRV_DIR/err")"
    case "$line" in
        "listening on "*) ;;
        *) fail "$1: first line is not \"listening on ...\": $line" ;;
    esac
    local addr=${line#listening on }
    SRV_PORT=${addr##*:}
    SRV_HOST=${addr%:*}
    SRV_HOST=${SRV_HOST#[}
    SRV_HOST=${SRV_HOST%]}
    case "$SRV_PORT" in ''|*[!0-9]*) fail "bad port in: $line" ;; esac
    [ "$SRV_PORT" -gt 0 ] || fail "port 0 in: $line"
}

# stop_server [SIGNAL]: signals the server (default TERM), waits at most
# 10 s for it and checks that it exited with status 0.
stop_server() {
    local sig=${1:-TERM}
    kill -"$sig" "$SRV_PID" || fail "server already gone"
    local i=0
    while kill -0 "$SRV_PID" 2>/dev/null; do
        i=$((i + 1))
        [ $i -le 1000 ] || fail "server did not stop within 10 s of SIG$sig"
        sleep 0.01
    done
    local st=0
    wait "$SRV_PID" || st=$?
    exec 9<&-
    [ "$st" -eq 0 ] || fail "server exited with status $st after SIG$sig: $(cat "$SRV_DIR/err")"
    rm -rf "$SRV_DIR"
    SRV_PID=""
}

alive() {
    kill -0 "$SRV_PID" 2>/dev/null || fail "server died: $(cat "$SRV_DIR/err")"
}

# tcp HOST PORT [--gap MS] PIECE...: one connection; sends each
# piece (\r \n \t \xHH escapes; @FILE: a file's bytes), MS ms apart so that they arrive as
# separate segments, then shuts the write side and prints
# everything that comes back until the server closes (5 s at most).
tcp() {
    perl "$(dirname "${BASH_SOURCE[0]}")/tcp.pl" "$@"
}
