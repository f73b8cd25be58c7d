#!/bin/bash
# examples/http_hello with curl and wrk: the body and headers, keep-alive,
# HTTP/1.0, pipelining, requests split across reads, bodies skipped,
# malformed requests answered 400 and closed, many concurrent clients, and
# a clean stop on SIGTERM.
# usage: http.sh HTTP_HELLO_BINARY
. "$(dirname "$0")/lib.sh"
need curl wrk
start_server "$1" --port 0
URL="http://$SRV_HOST:$SRV_PORT"
T=$SRV_DIR
count() { printf '%s' "$2" | grep -o -F -- "$1" | wc -l; } # count STRING TEXT

body=$(curl -sS --max-time 5 "$URL/") || fail "curl"
[ "$body" = "Hello, World!" ] || fail "body: '$body'"
curl -sS --max-time 5 -D "$T/h" -o /dev/null "$URL/x?y=1" || fail "curl -D"
grep -q '^HTTP/1.1 200 OK' "$T/h" || fail "status: $(cat "$T/h")"
grep -qi '^Content-Length: 13' "$T/h" || fail "content-length: $(cat "$T/h")"
grep -qi '^Date: ' "$T/h" || fail "no Date: $(cat "$T/h")"

# keep-alive: three requests on one connection
curl -sS --max-time 5 -v "$URL/1" "$URL/2" "$URL/3" >"$T/b" 2>"$T/v" || fail "curl keep-alive"
[ "$(cat "$T/b")" = "Hello, World!Hello, World!Hello, World!" ] || fail "keep-alive bodies"
[ "$(grep -c 'Connected to' "$T/v")" -eq 1 ] || fail "curl opened more than one connection"
# HTTP/1.0: closed after the response unless keep-alive was asked for
curl -sS --max-time 5 -0 -D "$T/h" "$URL/" >/dev/null || fail "curl -0"
grep -qi '^Connection: close' "$T/h" || fail "HTTP/1.0 without keep-alive not closed"
# HEAD: headers only
out=$(tcp "$SRV_HOST" "$SRV_PORT" 'HEAD / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
case "$out" in "HTTP/1.1 200 OK"*"Content-Length: 13"*) ;; *) fail "HEAD: $out" ;; esac
case "$out" in *Hello*) fail "HEAD answered with a body: $out" ;; esac

# pipelining: three requests in one write, three answers in order
out=$(tcp "$SRV_HOST" "$SRV_PORT" \
      'GET /a HTTP/1.1\r\nHost: t\r\n\r\nGET /b HTTP/1.1\r\nHost: t\r\n\r\nGET /c HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n')
[ "$(count 'HTTP/1.1 200 OK' "$out")" -eq 3 ] || fail "pipelined: $out"
[ "$(count 'Hello, World!' "$out")" -eq 3 ] || fail "pipelined bodies: $out"
# one request split over several reads, and a body that is skipped
out=$(tcp "$SRV_HOST" "$SRV_PORT" --gap 30 'GE' 'T / HTTP/1.1\r\nHo' 'st: t\r\n' '\r\n' \
      'POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n01234' '56789' \
      'GET / HTTP/1.1\r\nHost: t\r\n\r\n')
[ "$(count 'HTTP/1.1 200 OK' "$out")" -eq 3 ] || fail "split requests: $out"

# malformed: 400 and the connection closed (tcp returns at the close)
for bad in 'GARBAGE\r\n\r\n' 'GET / HTTP/1.1\r\n\r\n' 'GET / HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n' \
           'GET / HTTP/9.9\r\nHost: t\r\n\r\n' '\x16\x03\x01\x00\xa5\x01\x00' \
           'GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n' \
           'GET / HTTP/1.1\r\nHost: t\r\n\r\nGET\x00 / HTTP/1.1\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n'; do
    out=$(tcp "$SRV_HOST" "$SRV_PORT" "$bad")
    [ "$(count 'HTTP/1.1 400 Bad Request' "$out")" -eq 1 ] || fail "no 400 for '$bad': $out"
    [ "$(count 'HTTP/1.1 ' "$out")" -le 2 ] || fail "answered past the error: $out"
done
out=$(tcp "$SRV_HOST" "$SRV_PORT" 'POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n')
printf '%s' "$out" | grep -q '^HTTP/1.1 501' || fail "no 501 for chunked: $out"
huge=$(head -c 9000 /dev/zero | tr '\0' 'a')
out=$(tcp "$SRV_HOST" "$SRV_PORT" "GET /$huge HTTP/1.1\r\n")
printf '%s' "$out" | grep -q '^HTTP/1.1 431' || fail "no 431 for a 9 KB head: $out"
# a request cut short by the client's close: no answer, no crash
tcp "$SRV_HOST" "$SRV_PORT" 'GET / HTTP/1.1\r\nHo' >/dev/null
alive

# 100 concurrent curl clients, 5 requests each
seq 1 100 | xargs -P 50 -I{} curl -sS --max-time 10 -w '%{http_code}\n' \
    "$URL/{}" "$URL/{}" "$URL/{}" "$URL/{}" "$URL/{}" >"$T/codes" || fail "concurrent curl"
# (parallel writers: the output interleaves, so count the pieces)
[ "$(count 'Hello, World!' "$(cat "$T/codes")")" -eq 500 ] &&
    [ "$(count 200 "$(cat "$T/codes")")" -eq 500 ] || fail "concurrent curl: $(cat "$T/codes")"
# wrk, briefly: 100 connections for 2 s, every response a 200
wrk -t 2 -c 100 -d 2s --timeout 5s "$URL/" >"$T/wrk" 2>&1 || fail "wrk: $(cat "$T/wrk")"
grep -q 'Non-2xx' "$T/wrk" && fail "wrk saw non-2xx answers: $(cat "$T/wrk")"
grep -q 'Socket errors' "$T/wrk" && fail "wrk saw socket errors: $(cat "$T/wrk")"
grep 'Requests/sec' "$T/wrk"
alive
stop_server TERM
echo "http: ok"
