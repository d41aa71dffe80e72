# lib.sh - what the record-*.sh scripts share; each sources it right after
# `set -euo pipefail`. It sets:
#   $here    the sourcing script's folder (where its .cap files go)
#   $rec     record.py
#   $work    a temporary folder, removed at exit
#   pids     programs started in the background (pids+=($!)), killed at exit
# and defines:
#   freeport             prints a free loopback TCP port
#   waitport PORT        waits until 127.0.0.1:PORT accepts a connection (10 s at most)
#   wait_file FILE       waits until FILE exists (10 s at most)
#   relay_start LISTEN UPSTREAM HEADER_PORT [record.py args...]
#                        starts record.py relaying 127.0.0.1:LISTEN to 127.0.0.1:UPSTREAM
#                        (HEADER_PORT in the .cap header) and waits until it listens; its
#                        pid is $recpid
here=$(cd "$(dirname "$0")" && pwd)
rec=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/record.py
work=$(mktemp -d "${TMPDIR:-/tmp}/sidetap-rec.XXXXXX")
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

freeport() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

waitport() {
  for _ in $(seq 200); do
    python3 -c "import socket; socket.create_connection(('127.0.0.1',$1),0.2)" 2>/dev/null && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): nothing listens on port $1" >&2
  return 1
}

wait_file() {
  for _ in $(seq 200); do
    [[ -f $1 ]] && return 0
    sleep 0.05
  done
  echo "$(basename "$0"): $1 did not appear" >&2
  return 1
}

relay_start() {
  local listen=$1 upstream=$2 header_port=$3
  shift 3
  rm -f "$work/ready"
  python3 "$rec" --listen "127.0.0.1:$listen" --upstream "127.0.0.1:$upstream" \
    --port "$header_port" --ready "$work/ready" "$@" &
  recpid=$!
  wait_file "$work/ready"
}
