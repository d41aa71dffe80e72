#!/usr/bin/env bash
# bench/injector/run.sh [BUILD_DIR]: starts a release sidetap-injector on loopback
# (--kube-api none) and measures POST /mutate with the Bookinfo reviews-v1 review:
#   1. open loop at 500 requests/s over 50 keep-alive TLS connections, 10 s;
#   2. closed loop (max throughput) over 50 connections, 10 s.
# Prints requests/s and latency percentiles. Loopback only; bounded in count and time.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build}
inj=$build/injector/sidetap-injector
bench=$build/bench/injector/bench_mutate
[[ -x $inj && -x $bench ]] || { echo "build first: meson setup build --buildtype=release && ninja -C build" >&2; exit 2; }
work=$(mktemp -d)
"$inj" --listen 127.0.0.1:0 --cert-dir "$work" --kube-api none --native-sidecars on \
  >"$work/out" 2>"$work/log" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 50); do grep -q "listening on port" "$work/out" && break; sleep 0.1; done
port=$(awk '/listening on port/{print $4}' "$work/out")
body=$src/tests/injector/fixtures/bookinfo-reviews-v1.json
echo "sidetap-injector $("$inj" --version | cut -d' ' -f2), review $(stat -c %s "$body") bytes, $(nproc) CPUs"
"$bench" --port "$port" --ca "$work/ca.crt" --body "$body" --connections 50 --rate 500 --seconds 10
"$bench" --port "$port" --ca "$work/ca.crt" --body "$body" --connections 50 --seconds 10
echo "injector RSS after the runs: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"
