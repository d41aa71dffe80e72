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
cpu() { awk '{print $14 + $15}' /proc/$pid/stat; }   # injector CPU ticks
hz=$(getconf CLK_TCK)
echo "sidetap-injector $("$inj" --version | cut -d' ' -f2), review $(stat -c %s "$body") bytes, $(nproc) CPUs, load average $(cut -d' ' -f1 /proc/loadavg)"
"$build/bench/injector/bench_review" "$body" 20000
for args in "--rate 500" ""; do
  c0=$(cpu)
  out=$("$bench" --port "$port" --ca "$work/ca.crt" --body "$body" --connections 50 --seconds 10 $args) || true
  c1=$(cpu)
  echo "$out"
  n=$(echo "$out" | head -1 | sed -E 's/.*: ([0-9]+) requests.*/\1/')
  awk -v c=$((c1 - c0)) -v hz="$hz" -v n="$n" 'BEGIN { if (n > 0) printf "  injector CPU: %.0f us per request (TLS + HTTP + review)\n", c / hz / n * 1e6 }'
done
echo "injector RSS after the runs: $(awk '/VmRSS/{print $2, $3}' /proc/$pid/status)"
