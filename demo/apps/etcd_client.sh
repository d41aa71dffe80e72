#!/usr/bin/env bash
# The etcd workload's client: gRPC puts, gets and a watch against the 3-member cluster,
# at a gentle rate, bounded in time (SECONDS_MAX, default 3600).
#   etcd_client.sh ENDPOINTS   e.g. http://etcd-0.etcd.etcd.svc.cluster.local:2379,...
set -u
endpoints=$1
max=${SECONDS_MAX:-3600}
etcdctl --endpoints="$endpoints" watch --prefix /demo/ >/dev/null 2>&1 &
watcher=$!
trap 'kill $watcher 2>/dev/null; exit 0' TERM INT EXIT
end=$((SECONDS + max))
i=0
while [ $SECONDS -lt $end ]; do
  i=$((i + 1))
  etcdctl --endpoints="$endpoints" put "/demo/key$((i % 10))" "value-$i" >/dev/null 2>&1
  etcdctl --endpoints="$endpoints" get "/demo/key$((i % 10))" >/dev/null 2>&1
  if [ $((i % 10)) -eq 0 ]; then
    etcdctl --endpoints="$endpoints" get --prefix /demo/ --keys-only >/dev/null 2>&1
  fi
  sleep 2
done
