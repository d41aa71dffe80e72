#!/usr/bin/env bash
# Re-records tests/captures/kafka/*.cap: kcat (librdkafka) producing to and consuming from
# the broker stand-in tests/captures/kafka_broker.py on loopback, through record.py. The
# broker advertises the relay's port, so every connection kcat makes goes through it.
#   produce.cap   kcat -P, 3 messages to "orders" (ApiVersions v3 flexible, Metadata, Produce)
#   consume.cap   kcat -C -o beginning -e (Metadata, ListOffsets, Fetch)
#   acks0.cap     kcat -P -X acks=0: Produce requests that get no response
#   idempotent.cap  kcat -P -X enable.idempotence=true: InitProducerId v4 (flexible, response
#                 header v1 with tagged fields), then Produce
#   missing.cap   kcat -L -t missing-topic: Metadata answered UNKNOWN_TOPIC_OR_PARTITION
set -euo pipefail
# shellcheck source=SCRIPTDIR/../lib.sh
. "$(dirname "$0")/../lib.sh"

port=$((20000 + RANDOM % 20000)) relay=$((port + 1))
python3 "$here/../kafka_broker.py" --port "$port" --advertise-port "$relay" --seconds 120 --ready "$work/broker-ready" &
pids+=($!)
wait_file "$work/broker-ready"

record() { # name, client command...
  local name=$1; shift
  relay_start "$relay" "$port" 9092 --out "$here/$name.cap" --single --count 1 --seconds 30
  "$@"
  wait "$recpid"
}

kc() { timeout 20 kcat -b 127.0.0.1:$relay -X client.id=sidetap-test "$@"; }

produce_orders() { printf 'order-1\norder-2\norder-3\n' | kc -P -t orders -X linger.ms=0; }
produce_idempotent() { printf 'exactly\nonce\n' | kc -P -t payments -X enable.idempotence=true; }
produce_acks0() { printf 'fire\nand\nforget\n' | kc -P -t events -X acks=0; }

record produce produce_orders
record consume kc -C -t orders -o beginning -e -q
record acks0 produce_acks0
record idempotent produce_idempotent
record missing kc -L -t missing-topic

python3 "$here/../../fuzz/cap2seed.py" "$here/../../fuzz/corpus/kafka" "$here"/*.cap
ls -l "$here"/*.cap
