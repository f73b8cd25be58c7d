#!/bin/bash
# examples/kv with Debian's redis-cli and redis-benchmark: every command,
# expiry, pipelining, malformed RESP answered with an error, a crashed
# shard restarted while the server keeps serving, and a clean stop.
# usage: kv.sh KV_BINARY
. "$(dirname "$0")/lib.sh"
need redis-cli redis-benchmark
start_server "$1" --port 0 --shards 4
T=$SRV_DIR
cli() { redis-cli -h "$SRV_HOST" -p "$SRV_PORT" "$@"; }
expect() { # expect WANT ARGS...: the reply of redis-cli ARGS is WANT
    local want=$1
    shift
    local got
    got=$(cli "$@" 2>&1) || fail "redis-cli $*: $got"
    [ "$got" = "$want" ] || fail "redis-cli $*: wanted '$want', got '$got'"
}

expect PONG PING
expect hi PING hi
expect 'hello world' ECHO 'hello world'
expect OK SET k1 v1
expect v1 GET k1
expect '' GET nokey
expect 1 EXISTS k1
expect 2 EXISTS k1 k1
expect 0 EXISTS nokey
expect OK MSET a 1 b 2 c 3 d 4 e 5
expect "$(printf '1\n2\n\n5')" MGET a b nokey e
expect 6 INCR e
expect 5 DECR e
expect 15 INCRBY e 10
expect 1 INCR fresh
expect 'ERR value is not an integer or out of range' INCR k1
expect 'ERR increment or decrement would overflow' INCRBY e 9223372036854775807
expect 3 DEL a b c nokey
expect 0 EXISTS a b c
expect -1 TTL k1
expect -2 TTL nokey
expect 1 EXPIRE k1 100
ttl=$(cli TTL k1)
[ "$ttl" -ge 99 ] && [ "$ttl" -le 100 ] || fail "TTL after EXPIRE 100: $ttl"
expect 1 PERSIST k1
expect -1 TTL k1
expect OK SET big "$(head -c 100000 /dev/zero | tr '\0' 'z')"
[ "$(cli GET big | wc -c)" -eq 100001 ] || fail "100000-byte value"
expect OK SET ex v EX 100
expect '' SET ex w NX
expect OK SET ex w XX KEEPTTL
expect w GET ex
[ "$(cli TTL ex)" -gt 90 ] || fail "KEEPTTL lost the TTL"
expect 'ERR syntax error' SET ex v BOGUS
expect 'ERR invalid expire time in '"'"'set'"'"' command' SET ex v EX 0
expect "ERR wrong number of arguments for 'get' command" GET
expect "ERR unknown command 'NOPE', with args beginning with: " NOPE x

# expiry on hive timers: gone without being read (DBSIZE does not read keys)
expect OK FLUSHALL
expect 0 DBSIZE
# The short key lives 3 s, so that two redis-cli runs on a loaded machine
# still see it; then it must go without being read (up to 10 s of polling).
expect OK SET short v PX 3000
expect OK SET long v EX 100
expect 2 DBSIZE
for i in $(seq 1 1000); do
    [ "$(cli DBSIZE)" = 1 ] && break
    sleep 0.01
done
expect 1 DBSIZE
expect '' GET short
expect v GET long

# pipelining: many commands in one write, answered in order
out=$(tcp "$SRV_HOST" "$SRV_PORT" \
      '*3\r\n$3\r\nSET\r\n$1\r\np\r\n$1\r\n1\r\n*2\r\n$4\r\nINCR\r\n$1\r\np\r\nINCR p\r\n*2\r\n$3\r\nGET\r\n$1\r\np\r\nPING\r\n')
[ "$out" = "$(printf '+OK\r\n:2\r\n:3\r\n$1\r\n3\r\n+PONG\r\n')" ] || fail "pipelined: $(printf '%q' "$out")"
for i in $(seq 1 1000); do printf 'INCR pipe\r\n'; done >"$T/pipe"
out=$(tcp "$SRV_HOST" "$SRV_PORT" "@$T/pipe" | tr -d '\r' | tail -1)
[ "$out" = ":1000" ] || fail "1000 pipelined INCRs end with '$out'"
# pipelined commands on many keys, spread over the shards (one request per
# shard for each batch of input): every reply in command order, each seeing
# the commands before it on its key, TTLs converted to seconds
for i in $(seq 1 100); do
    printf 'SET m%d %d\r\nINCR m%d\r\nGET m%d\r\nSET t%d x EX 100\r\nTTL t%d\r\n' \
        "$i" "$i" "$i" "$((i - 1))" "$i" "$i"
done >"$T/mixed"
for i in $(seq 1 100); do
    printf '+OK\r\n:%d\r\n' "$((i + 1))"
    if [ "$i" = 1 ]; then printf '$-1\r\n'; else printf '$%d\r\n%d\r\n' "${#i}" "$i"; fi
    printf '+OK\r\n:100\r\n'
done >"$T/mixed.want"
tcp "$SRV_HOST" "$SRV_PORT" "@$T/mixed" >"$T/mixed.got"
cmp -s "$T/mixed.got" "$T/mixed.want" ||
    fail "500 pipelined commands on 200 keys: $(diff <(tr -d '\r' <"$T/mixed.want") <(tr -d '\r' <"$T/mixed.got") | head -5)"
# a command split over several reads
out=$(tcp "$SRV_HOST" "$SRV_PORT" --gap 30 '*2\r\n$3\r' '\nGET\r\n$' '4\r\nlo' 'ng\r\n')
[ "$out" = "$(printf '$1\r\nv\r\n')" ] || fail "split command: $(printf '%q' "$out")"

# malformed RESP: an error reply, then the connection is closed
for bad in '*x\r\n' '*1\r\n:5\r\n' '*1\r\n$-5\r\n' '*1\r\n$3\r\nabcde\r\n' \
           '*99999999\r\n' '*1\r\n$99999999999\r\n' 'GET "k\r\n' '*2\r\n$3\r\nGET\r\n$2000000\r\n'; do
    out=$(tcp "$SRV_HOST" "$SRV_PORT" "$bad")
    case "$out" in "-ERR Protocol error"*) ;; *) fail "no protocol error for '$bad': $(printf '%q' "$out")" ;; esac
done
out=$(tcp "$SRV_HOST" "$SRV_PORT" 'PING\r\n*1\r\n$4\r\nPING\r\n*z\r\nPING\r\n')
[ "$out" = "$(printf '+PONG\r\n+PONG\r\n-ERR Protocol error: invalid multibulk length\r\n')" ] ||
    fail "replies before the error: $(printf '%q' "$out")"
alive

# a shard that crashes is restarted, empty; the others keep their keys
expect OK FLUSHALL
for i in $(seq 1 40); do printf 'SET key%d %d\r\n' "$i" "$i"; done >"$T/set"
tcp "$SRV_HOST" "$SRV_PORT" "@$T/set" >/dev/null
expect 40 DBSIZE
expect OK DEBUG CRASHSHARD key1
left=$(cli DBSIZE)
[ "$left" -lt 40 ] && [ "$left" -gt 0 ] || fail "after a shard crash, $left of 40 keys (4 shards)"
expect '' GET key1
expect OK SET key1 again
expect again GET key1
for i in 1 2 3 4 5; do expect OK DEBUG CRASHSHARD "k$i"; done
expect PONG PING
expect OK SET after crash
expect crash GET after
alive

# redis-benchmark: 50 clients, plain and pipelined, every reply checked by it
redis-benchmark -h "$SRV_HOST" -p "$SRV_PORT" -q -n 20000 -c 50 -t ping,set,get,incr,mset \
    >"$T/rb" 2>&1 || fail "redis-benchmark: $(cat "$T/rb")"
redis-benchmark -h "$SRV_HOST" -p "$SRV_PORT" -q -n 20000 -c 50 -P 16 -t set,get \
    >>"$T/rb" 2>&1 || fail "redis-benchmark -P 16: $(cat "$T/rb")"
tr '\r' '\n' <"$T/rb" | grep 'requests per second' || fail "redis-benchmark: $(cat "$T/rb")"
grep -qi 'error' "$T/rb" && fail "redis-benchmark errors: $(cat "$T/rb")"
# many concurrent redis-cli clients
seq 1 100 | xargs -P 50 -I{} redis-cli -h "$SRV_HOST" -p "$SRV_PORT" SET c{} {} >"$T/c" ||
    fail "concurrent redis-cli"
[ "$(grep -c '^OK$' "$T/c")" -eq 100 ] || fail "concurrent redis-cli: $(sort "$T/c" | uniq -c)"
alive
stop_server TERM
echo "kv: ok"
