#!/usr/bin/env bash
# Re-records tests/captures/redis/*.cap: real redis-cli, redis-benchmark, a raw socket
# (inline commands) and a real replica against redis-server 7, all on loopback, through
# record.py. The header says port 6379 whatever port the run used.
# usage: record-redis.sh [NAME...]   (default: all; e.g. `record-redis.sh pipe-mass`)
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "$0")/../lib.sh"
only=" $* "
want() { [[ $only == "  " || $only == *" $1 "* ]]; }

srv=$(freeport)
redis-server --port "$srv" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --repl-diskless-sync yes --repl-diskless-sync-delay 0 --daemonize no >"$work/redis.log" 2>&1 &
pids+=($!)
waitport "$srv"
cli() { redis-cli -h 127.0.0.1 -p "$srv" "$@" >/dev/null; }
resp() { # args -> one RESP command
  printf '*%d\r\n' $#; for a in "$@"; do printf '$%d\r\n%s\r\n' ${#a} "$a"; done
}

# record NAME COUNT -- starts the relay on a fresh port; sets $lp
record() {
  lp=$(freeport)
  relay_start "$lp" "$srv" 6379 --out "$work/$1" --count "$2" --seconds "${3:-20}"
}
finish() { # NAME: wait for the relay, keep its first connection as NAME.cap
  wait "$recpid" || true
  cp "$work/$1-1.cap" "$here/$1.cap"
}

# 1. redis-cli, one command at a time, including an error reply and a miss.
if want basic; then
record basic 1
printf '%s\n' 'SET user:1 alice' 'GET user:1' 'GET user:404' 'INCR user:1' 'HSET h:1 name bob age 42' \
  'HGETALL h:1' 'DEL user:1 h:1' 'PING' | redis-cli -h 127.0.0.1 -p "$lp" >/dev/null
finish basic
fi

# 2. redis-benchmark, pipelined (-P 5), one client.
# It opens one connection for its CONFIG GET, then one per test.
if want pipeline; then
record pipeline 3
redis-benchmark -h 127.0.0.1 -p "$lp" -c 1 -n 10 -P 5 -t set,get -r 100 -q >/dev/null
wait "$recpid" || true
cp "$work/pipeline-2.cap" "$here/pipeline-set.cap"  # 1 is its CONFIG GET connection
cp "$work/pipeline-3.cap" "$here/pipeline-get.cap"
fi

# 3. MULTI/EXEC, pipelined in one write by redis-cli --pipe (which adds an ECHO marker).
if want multi; then
record multi 1
{ resp MULTI; resp SET counter 10; resp INCR counter; resp GET counter; resp EXEC
  resp MULTI; resp SET other x; resp NOSUCHCMD; resp EXEC; } | redis-cli -h 127.0.0.1 -p "$lp" --pipe >/dev/null 2>&1 || true # errors make it exit 1
finish multi
fi

# 4. Inline commands from a raw socket, pipelined in one write.
if want inline; then
record inline 1
python3 - "$lp" <<'PY'
import socket, sys, time
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(b'PING\r\nSET greeting "hello world"\r\nGET greeting\r\nEXISTS greeting nokey\r\n')
want, got = b"+PONG\r\n+OK\r\n$11\r\nhello world\r\n:1\r\n", b""
deadline = time.time() + 5
while len(got) < len(want) and time.time() < deadline:
    got += s.recv(4096)
assert got == want, got
s.close()
PY
finish inline
fi

# 5. RESP3 (redis-cli -3 sends HELLO 3): map, set, double, null replies.
if want resp3; then
cli HSET h:3 f1 v1 f2 v2 >/dev/null; cli SADD s:3 a b >/dev/null; cli ZADD z:3 1.5 m >/dev/null
record resp3 1
printf '%s\n' 'HGETALL h:3' 'SMEMBERS s:3' 'ZSCORE z:3 m' 'GET nokey' 'EXISTS h:3' | \
  redis-cli -3 -h 127.0.0.1 -p "$lp" >/dev/null
finish resp3
fi

# 6. Pub/sub: a subscriber through the relay, two messages published directly.
if want pubsub; then
record pubsub 1
(timeout 3 redis-cli -h 127.0.0.1 -p "$lp" SUBSCRIBE news alerts >/dev/null || true) &
sub=$!
for _ in $(seq 100); do
  [[ $(redis-cli -h 127.0.0.1 -p "$srv" PUBSUB NUMSUB news | sed -n 2p) == 1 ]] && break; sleep 0.05
done
cli PUBLISH news "hello subscribers"
cli PUBLISH alerts "disk full"
wait "$sub"
finish pubsub
fi

# 7. A real replica syncing from the leader through the relay (diskless: $EOF:<mark>).
if want replica; then
cli SET repl:seed 1 >/dev/null
record replica 1 30
rport=$(freeport)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --replicaof 127.0.0.1 "$lp" --repl-ping-replica-period 1 --daemonize no >"$work/replica.log" 2>&1 &
rpid=$!
pids+=($rpid)
for _ in $(seq 200); do
  redis-cli -h 127.0.0.1 -p "$rport" INFO replication 2>/dev/null | grep -q 'master_link_status:up' && break; sleep 0.05
done
cli SET repl:key value1
cli INCR repl:counter
cli DEL repl:seed
for _ in $(seq 100); do
  [[ $(redis-cli -h 127.0.0.1 -p "$rport" GET repl:key) == value1 ]] && break; sleep 0.05
done
sleep 1.5 # one REPLCONF ACK round
redis-cli -h 127.0.0.1 -p "$rport" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
wait "$rpid" 2>/dev/null || true
finish replica
fi

# 8. The same with a disk-based sync: $<len> RDB payload, no trailing CRLF.
if want replica-disk; then
cli CONFIG SET repl-diskless-sync no >/dev/null
record replica-disk 1 30
rport=$(freeport)
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  --dbfilename replica-disk.rdb --replicaof 127.0.0.1 "$lp" --daemonize no >"$work/replica2.log" 2>&1 &
rpid=$!
pids+=($rpid)
for _ in $(seq 200); do
  redis-cli -h 127.0.0.1 -p "$rport" INFO replication 2>/dev/null | grep -q 'master_link_status:up' && break; sleep 0.05
done
cli SET repl:disk yes
for _ in $(seq 100); do
  [[ $(redis-cli -h 127.0.0.1 -p "$rport" GET repl:disk) == yes ]] && break; sleep 0.05
done
redis-cli -h 127.0.0.1 -p "$rport" SHUTDOWN NOSAVE >/dev/null 2>&1 || true
wait "$rpid" 2>/dev/null || true
finish replica-disk
fi

# 9. PSUBSCRIBE: pattern messages.
if want psubscribe; then
record psubscribe 1
(timeout 3 redis-cli -h 127.0.0.1 -p "$lp" PSUBSCRIBE 'orders.*' >/dev/null || true) &
sub=$!
for _ in $(seq 100); do
  [[ $(redis-cli -h 127.0.0.1 -p "$srv" PUBSUB NUMPAT) == 1 ]] && break; sleep 0.05
done
cli PUBLISH orders.eu "order 17"
wait "$sub"
finish psubscribe
fi

# 10. RESP3 pushes from a raw socket: a client-tracking invalidation, then pub/sub where
#     the subscribe confirmation and the message are `>` pushes.
if want resp3-push; then
record resp3-push 1
python3 - "$lp" "$srv" <<'PY'
import socket, subprocess, sys, time
def resp(*args):
    return b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args)
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
def expect(token):
    got, deadline = b"", time.time() + 5
    while token not in got and time.time() < deadline:
        got += s.recv(65536)
    assert token in got, (token, got)
s.sendall(resp(b"HELLO", b"3"))
expect(b"proto")
s.sendall(resp(b"CLIENT", b"TRACKING", b"on") + resp(b"GET", b"trk:1"))
expect(b"_\r\n")
subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", sys.argv[2], "SET", "trk:1", "x"], check=True, stdout=subprocess.DEVNULL)
expect(b"invalidate")
s.sendall(resp(b"SUBSCRIBE", b"news"))
expect(b"subscribe")
subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", sys.argv[2], "PUBLISH", "news", "resp3 hello"], check=True, stdout=subprocess.DEVNULL)
expect(b"resp3 hello")
s.sendall(resp(b"PING"))
expect(b"PONG")
s.close()
PY
finish resp3-push
fi

# 11. MONITOR through the relay while another client runs commands.
if want monitor; then
record monitor 1
(timeout 2 redis-cli -h 127.0.0.1 -p "$lp" MONITOR >/dev/null || true) &
mon=$!
sleep 0.5
cli SET mon:key 1
cli GET mon:key
wait "$mon"
finish monitor
fi

# 12. Mass insertion: 3000 SETs through redis-cli --pipe (one stream, written as fast as
#     the socket takes it; replies read concurrently), ending with its ECHO marker.
if want pipe-mass; then
record pipe-mass 1
python3 -c '
import sys
out = sys.stdout.buffer
for i in range(3000):
    k, v = b"mass:%04d" % i, b"v%04d" % i
    out.write(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(k), k, len(v), v))
' | redis-cli -h 127.0.0.1 -p "$lp" --pipe >/dev/null
finish pipe-mass
fi

# 13. redis-benchmark -P 200: 1000 GETs in batches of 200 on one connection.
if want pipe-bench; then
cli SET key:__rand_int__ x
record pipe-bench 2
redis-benchmark -h 127.0.0.1 -p "$lp" -c 1 -n 1000 -P 200 -t get -q >/dev/null
wait "$recpid" || true
cp "$work/pipe-bench-2.cap" "$here/pipe-bench.cap" # 1 is its CONFIG GET connection
fi

ls -l "$here"/*.cap
