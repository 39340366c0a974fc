#!/usr/bin/env bash
# The runnable demo until swarmd exists: a 3-member replicated log (raftkv, the Raft node in
# real processes) on loopback. It writes through the leader, kills the leader with kill -9,
# shows a new leader taking over with nothing lost, brings the old leader back and shows it
# caught up. Everything it starts and creates is removed when it ends (also on Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh
bazel build //raft/tools:raftkv //raft/tools:raftkvctl >/dev/null 2>&1 ||
  { echo "build failed: run 'bazel build //raft/tools:all' to see why" >&2; exit 1; }
bin=$(bazel info bazel-bin 2>/dev/null)/raft/tools

dir=$(mktemp -d /tmp/raft-demo.XXXXXX)
declare -A pids
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT

port() { echo $((7100 + $1)); }
peers="1=127.0.0.1:$(port 1),2=127.0.0.1:$(port 2),3=127.0.0.1:$(port 3)"
start() {
  "$bin/raftkv" --id "$1" --listen "127.0.0.1:$(port "$1")" --state-dir "$dir/m$1" \
    --peers "$peers" >>"$dir/m$1.log" 2>&1 &
  pids[$1]=$!
}
ctl() { "$bin/raftkvctl" --server "127.0.0.1:$(port "$1")" "${@:2}"; }
leader() {
  for _ in $(seq 100); do
    for i in "${!pids[@]}"; do
      if ctl "$i" status 2>/dev/null | grep -q "state=leader"; then echo "$i"; return; fi
    done
    sleep 0.1
  done
  echo "no leader elected" >&2; exit 1
}

echo "== starting 3 members (logs and state in $dir)"
for i in 1 2 3; do start "$i"; done
l=$(leader)
for i in 1 2 3; do echo "member $i: $(ctl "$i" status)"; done

echo "== writing 5 keys through the leader (member $l)"
for k in 1 2 3 4 5; do echo "put k$k: $(ctl "$l" put "k$k" "value-$k")"; done

echo "== kill -9 the leader (member $l)"
kill -9 "${pids[$l]}"; wait "${pids[$l]}" 2>/dev/null || true; unset "pids[$l]"
t0=$(date +%s%N)
n=$(leader)
echo "member $n leads after $((($(date +%s%N) - t0) / 1000000)) ms"
echo "read k3 on member $n: $(ctl "$n" get k3)"
echo "put k6: $(ctl "$n" put k6 value-6)"

echo "== restarting member $l: it recovers from disk and catches up"
start "$l"
commit=$(ctl "$n" status | sed 's/.*commit=\([0-9]*\).*/\1/')
for _ in $(seq 100); do
  applied=$(ctl "$l" status 2>/dev/null | sed -n 's/.*applied=\([0-9]*\).*/\1/p' || true)
  [[ -n $applied && $applied -ge $commit ]] && break
  sleep 0.1
done
echo "member $l: $(ctl "$l" status)"
echo "read k6 on member $l: $(ctl "$l" get k6)"
echo "== done: stopping everything and removing $dir"
