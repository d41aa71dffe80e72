#!/usr/bin/env bash
# Re-records tests/captures/dns/*.cap: dig against dnsmasq (Debian dnsmasq-base) on a
# loopback port, through record.py, over UDP (udp.cap) and TCP (tcp.cap, one connection
# with several queries thanks to +keepopen). Every answer is local (no upstream at all).
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "$0")/../lib.sh"

port=$((20000 + RANDOM % 20000)) relay=$((port + 1))
cat >"$work/dnsmasq.conf" <<CONF
port=$port
listen-address=127.0.0.1
bind-interfaces
no-resolv
no-hosts
user=root
local-ttl=5
local=/cluster.local/
local=/test/
host-record=redis-leader.guestbook.svc.cluster.local,10.1.0.7,fd00::7
host-record=app.example.test,10.1.0.20
cname=www.example.test,web.example.test
cname=web.example.test,app.example.test
srv-host=_redis._tcp.guestbook.svc.cluster.local,redis-leader.guestbook.svc.cluster.local,6379,0,5
txt-record=info.example.test,"v=spf1 -all","second string"
ptr-record=9.0.1.10.in-addr.arpa,db.example.test
CONF
dnsmasq --keep-in-foreground --conf-file="$work/dnsmasq.conf" --pid-file="$work/dnsmasq.pid" &
pids+=($!)
for _ in $(seq 50); do dig @127.0.0.1 -p "$port" +short +tries=1 +time=1 app.example.test >/dev/null 2>&1 && break; sleep 0.1; done

queries=(
  "redis-leader.guestbook.svc.cluster.local A"
  "redis-leader.guestbook.svc.cluster.local AAAA"
  "www.example.test A"
  "_redis._tcp.guestbook.svc.cluster.local SRV"
  "info.example.test TXT"
  "9.0.1.10.in-addr.arpa PTR"
  "7.0.1.10.in-addr.arpa PTR"
  "missing.guestbook.svc.cluster.local A"
)

# UDP: one file, one datagram per record, 8 answers.
relay_start "$relay" "$port" 53 --udp --out "$here/udp.cap" --single --count ${#queries[@]} \
  --seconds 20
for q in "${queries[@]}"; do
  # shellcheck disable=SC2086
  dig @127.0.0.1 -p $relay +tries=1 +time=2 +noall +answer $q
done
wait "$recpid"

# TCP: one connection carrying all the queries.
relay_start "$relay" "$port" 53 --out "$here/tcp.cap" --single --count 1 --seconds 20
# shellcheck disable=SC2046
dig @127.0.0.1 -p $relay +tcp +keepopen +tries=1 +time=2 +noall +answer $(printf '%s ' "${queries[@]}")
wait "$recpid"
python3 "$here/../../fuzz/cap2seed.py" "$here/../../fuzz/corpus/dns" "$here/udp.cap" "$here/tcp.cap"
ls -l "$here"/*.cap
