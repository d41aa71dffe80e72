#!/usr/bin/env bash
# Re-records tests/captures/grpc/*.cap: etcdctl (etcd-client, gRPC over h2c) against a
# real etcd (etcd-server) with a temporary data dir, loopback only, through record.py.
# The header says port 2379 whatever port the run used.
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "$0")/../lib.sh"

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
  relay_start "$lp" "$cport" 2379 --out "$here/$1.cap" --single --count 1 --seconds 20
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
