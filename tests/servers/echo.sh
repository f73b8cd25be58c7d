#!/bin/bash
# examples/echo: both styles serve many concurrent connections (echo-load,
# every byte checked), split and large writes come back whole, and SIGTERM
# and SIGINT stop the server with status 0.
# usage: echo.sh ECHO_BINARY ECHO_LOAD_BINARY
. "$(dirname "$0")/lib.sh"
ECHO=$1
LOAD=$2

for style in async blocking; do
    start_server "$ECHO" --port 0 --style "$style"
    out=$(tcp "$SRV_HOST" "$SRV_PORT" --gap 20 'hello ' 'wor' 'ld\n') || fail "tcp"
    [ "$out" = "hello world" ] || fail "$style: echo of split writes: '$out'"
    head -c 300000 /dev/urandom >"$SRV_DIR/big"
    tcp "$SRV_HOST" "$SRV_PORT" "@$SRV_DIR/big" >"$SRV_DIR/back" || fail "tcp"
    cmp -s "$SRV_DIR/big" "$SRV_DIR/back" || fail "$style: 300000 bytes did not come back the same"
    res=$("$LOAD" --host "$SRV_HOST" --port "$SRV_PORT" --conns 200 --threads 2 --size 64 \
          --duration 1 --warmup 0.2) || fail "$style: echo-load: $res"
    case "$res" in *'"errors":0'*) ;; *) fail "$style: echo-load: $res" ;; esac
    reqs=$(echo "$res" | sed 's/.*"requests":\([0-9]*\).*/\1/')
    [ "$reqs" -gt 1000 ] || fail "$style: only $reqs echoes in 1 s: $res"
    echo "$style: $res"
    # a few hundred connections held open, then dropped at once
    "$LOAD" --host "$SRV_HOST" --port "$SRV_PORT" --idle 500 </dev/null >/dev/null ||
        fail "$style: 500 idle connections"
    alive
    if [ "$style" = async ]; then stop_server TERM; else stop_server INT; fi
done
echo "echo: ok"
