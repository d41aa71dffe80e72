#!/usr/bin/env bash
# Re-records tests/captures/grpc/*.cap: etcdctl (etcd-client, gRPC over h2c) against a
# real etcd (etcd-server) with a temporary data dir, loopback only, through record.py.
# The header says port 2379 whatever port the run used.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
rec="$here/../record.py"
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 200); do python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0; sleep 0.05; done; echo "port $1 not up" >&2; return 1; }

cport=$(freeport) pport=$(freeport)
etcd --name sidetap --data-dir "$work/etcd" \
  --listen-client-urls "http://127.0.0.1:$cport" --advertise-client-urls "http://127.0.0.1:$cport" \
  --listen-peer-urls "http://127.0.0.1:$pport" --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
  --initial-cluster "sidetap=http://127.0.0.1:$pport" >"$work/etcd.log" 2>&1 &
pids+=($!)
waitport "$cport"
export ETCDCTL_API=3
direct() { etcdctl --endpoints="127.0.0.1:$cport" "$@"; }
for _ in $(seq 100); do direct endpoint health >/dev/null 2>&1 && break; sleep 0.1; done

# record NAME: a relay on a fresh port ($lp) for one connection
record() {
  lp=$(freeport)
  rm -f "$work/ready"
  python3 "$rec" --listen "127.0.0.1:$lp" --upstream "127.0.0.1:$cport" --port 2379 \
    --out "$here/$1.cap" --single --count 1 --seconds 20 --ready "$work/ready" &
  recpid=$!
  for _ in $(seq 100); do [[ -f $work/ready ]] && break; sleep 0.05; done
}
ctl() { etcdctl --endpoints="127.0.0.1:$lp" "$@"; }

record put
ctl put /sidetap/greeting "hello from etcdctl" >/dev/null
wait "$recpid"

record get
ctl get --prefix /sidetap/ >/dev/null
wait "$recpid"

# A watch that sees two puts, then etcdctl is stopped (the stream is still open).
record watch
(timeout -s INT 3 etcdctl --endpoints="127.0.0.1:$lp" watch /sidetap/config >"$work/watch.out" || true) &
w=$!
sleep 1
direct put /sidetap/config v1 >/dev/null
direct put /sidetap/config v2 >/dev/null
wait "$w"
wait "$recpid"
grep -q v2 "$work/watch.out"

# A lease: grant, then one keep-alive round on the LeaseKeepAlive stream.
lease=$(direct lease grant 60 | awk '{print $2}')
record lease-keepalive
ctl lease keep-alive --once "$lease" >/dev/null
wait "$recpid"

# Revoking a lease that does not exist: gRPC status NOT_FOUND.
record not-found
ctl lease revoke 1234abcd >/dev/null 2>&1 || true
wait "$recpid"

ls -l "$here"/*.cap
