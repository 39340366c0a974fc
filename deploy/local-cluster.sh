#!/usr/bin/env bash
# A local swarm of real swarmd processes, each in its own network namespace with its own
# address on a bridge this script creates (10.99.0.0/24), formed the way an operator forms one
# (swarm init, join tokens, swarm join), then driven with swarmctl.
#
#   bash deploy/local-cluster.sh [up] [--managers N] [--workers N]   (default 3 and 2)
#   bash deploy/local-cluster.sh down                                 removes everything
#
# Needs root (namespaces, bridge). Everything lives under /run/swarm-local: the nodes' state,
# sockets and logs, and a registry (Debian's docker-registry, on the bridge's address) holding
# a busybox image built here, which the nodes pull; `down` removes it all with the namespaces,
# links, processes and the containers the nodes ran.
set -euo pipefail
cd "$(dirname "$0")/.."

base=/run/swarm-local
bridge=swarm-local0
subnet=10.99.0
port=4242

down() {
  if [[ -d $base ]]; then
    for pidfile in "$base"/node-*.pid "$base"/registry.pid; do
      [[ -e $pidfile ]] || continue
      kill -TERM "$(cat "$pidfile")" 2>/dev/null || true
    done
    sleep 1
    for pidfile in "$base"/node-*.pid "$base"/registry.pid; do
      [[ -e $pidfile ]] || continue
      kill -KILL "$(cat "$pidfile")" 2>/dev/null || true
    done
    # The nodes' containers outlive swarmd by design (their shims hold them): end them too.
    for dir in "$base"/node-*/runtime; do
      [[ -d $dir && $dir != *.run/runtime && -x $base/bin/swarmd-runtime ]] || continue
      node=${dir%/runtime}
      rt=("$base/bin/swarmd-runtime" --root "$dir" --run-root "$node.run/runtime")
      for id in $("${rt[@]}" ps -a 2>/dev/null | awk 'NR > 1 {print $1}'); do
        "${rt[@]}" rm -f "$id" >/dev/null 2>&1 || true
      done
    done
    # The nodes' overlay, task and routing-mesh namespaces are bind mounts in their state
    # directories; with the mounts gone the kernel frees them and their links.
    for m in "$base"/node-*/netns/*; do
      [[ -e $m ]] && umount -l "$m" 2>/dev/null || true
    done
  fi
  for ns in $(ip netns list 2>/dev/null | awk '/^swarm-local-/ {print $1}'); do
    ip netns delete "$ns"
  done
  ip link delete "$bridge" 2>/dev/null || true
  rm -rf "$base"
  # The runtime's parent cgroup, once empty (other users of the runtime keep theirs).
  rmdir /sys/fs/cgroup/*/swarm /sys/fs/cgroup/swarm 2>/dev/null || true
}

if [[ ${1:-up} == down ]]; then
  down
  echo "local swarm removed"
  exit 0
fi
[[ ${1:-} == up ]] && shift
managers=3 workers=2
while [[ $# -gt 0 ]]; do
  case $1 in
    --managers) managers=$2; shift 2 ;;
    --workers) workers=$2; shift 2 ;;
    *) echo "unknown argument $1 (use: up [--managers N] [--workers N] | down)" >&2; exit 2 ;;
  esac
done
if ((managers < 1 || managers + workers > 50)); then
  echo "need 1 or more managers and at most 50 nodes" >&2
  exit 2
fi
if [[ $(id -u) != 0 ]]; then
  echo "this needs root (network namespaces and a bridge)" >&2
  exit 1
fi

bash deploy/install-deps.sh
echo "== building swarmd and swarmctl"
targets="//node:swarmd //cli:swarmctl //agent/runtime:swarmd-runtime //agent/runtime:make_busybox_image"
bazel build -c opt $targets >/dev/null 2>&1 ||
  { echo "build failed: run 'bazel build $targets' to see why" >&2; exit 1; }
bin=$(bazel info -c opt bazel-bin 2>/dev/null)
down
mkdir -p "$base/bin"
cp "$bin/node/swarmd" "$bin/node/swarm-shim" "$bin/cli/swarmctl" "$bin/agent/runtime/swarmd-runtime" "$base/bin/"

echo "== network: bridge $bridge ($subnet.0/24), one namespace per node"
ip link add "$bridge" type bridge
ip addr add "$subnet.254/24" dev "$bridge"
ip link set "$bridge" up
nodes=$((managers + workers))
for i in $(seq "$nodes"); do
  ns=swarm-local-$i
  ip netns add "$ns"
  ip link add "sl$i" type veth peer name eth0 netns "$ns"
  ip link set "sl$i" master "$bridge" up
  ip -n "$ns" addr add "$subnet.$i/24" dev eth0
  ip -n "$ns" link set eth0 up
  ip -n "$ns" link set lo up
done

registry=$subnet.254:5000
echo "== a registry on $registry with a busybox image built here"
printf 'version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n' \
  "$base/registry" "$registry" >"$base/registry.yml"
/usr/bin/docker-registry serve "$base/registry.yml" >>"$base/registry.log" 2>&1 &
echo $! >"$base/registry.pid"
"$bin/agent/runtime/make_busybox_image" "$base/busybox-layout" latest >/dev/null
for _ in $(seq 100); do
  curl -fs "http://$registry/v2/" >/dev/null && break
  sleep 0.1
done
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$base/busybox-layout:latest" \
  "docker://$registry/busybox:latest"

start() {
  local i=$1 role=$2
  # nsenter enters the node's network namespace only: `ip netns exec` would also mount a
  # sysfs of its own over /sys, hiding the cgroup hierarchies the containers need.
  nsenter --net="/run/netns/swarm-local-$i" "$base/bin/swarmd" --state-dir "$base/node-$i" \
    --exec-root "$base/node-$i.run" \
    --socket "$base/node-$i.sock" --listen-addr "$subnet.$i:$port" \
    --insecure-registry "$registry" --hostname "$role-$i" >>"$base/node-$i.log" 2>&1 &
  echo $! >"$base/node-$i.pid"
  for _ in $(seq 100); do
    [[ -S $base/node-$i.sock ]] && return
    sleep 0.1
  done
  echo "swarmd $i did not start: see $base/node-$i.log" >&2
  exit 1
}
ctl() { "$base/bin/swarmctl" --socket "$base/node-$1.sock" "${@:2}"; }

echo "== starting $managers managers and $workers workers"
for i in $(seq "$managers"); do start "$i" manager; done
for i in $(seq $((managers + 1)) "$nodes"); do start "$i" worker; done

echo "== swarm init on node 1"
ctl 1 swarm init
manager_token=$(ctl 1 swarm join-token -q manager)
worker_token=$(ctl 1 swarm join-token -q worker)
for i in $(seq 2 "$managers"); do
  echo "== node $i joins as a manager"
  ctl "$i" swarm join --token - "$subnet.1:$port" <<<"$manager_token"
done
for i in $(seq $((managers + 1)) "$nodes"); do
  echo "== node $i joins as a worker"
  ctl "$i" swarm join --token - "$subnet.1:$port" <<<"$worker_token"
done

echo "== the swarm, seen from node $managers"
ctl "$managers" node ls

echo "== a demo service, created through node $managers: 3 replicas of an HTTP server that"
echo "   answers with its task's name, port 8080 published on every node (the routing mesh)"
ctl "$managers" service create --detach --name web --replicas 3 --publish 8080:80 \
  --hostname 'web.{{.Task.Slot}}.{{.Node.Hostname}}' "$registry/busybox" \
  sh -c 'mkdir -p /www && hostname > /www/index.html && exec httpd -f -p 80 -h /www'
for _ in $(seq 300); do
  ctl 1 service ls | grep -q " 3/3 " && break
  sleep 0.1
done
ctl 1 service ls
ctl 1 service ps web

ask_every_node() {
  local ok=0 answer
  for i in $(seq "$nodes"); do
    [[ -S $base/node-$i.sock ]] || continue
    answer=
    for _ in $(seq 50); do
      answer=$(curl -fs --max-time 2 "http://$subnet.$i:8080/" 2>/dev/null) && break
      sleep 0.1
    done
    if [[ -n $answer ]]; then
      echo "  http://$subnet.$i:8080/ -> $answer"
      ok=$((ok + 1))
    else
      echo "  http://$subnet.$i:8080/ -> no answer"
    fi
  done
  ((ok > 0))
}
echo "== the published port answers on every node, also on nodes without a task"
ask_every_node || { echo "the demo service does not answer: see $base/node-N.log" >&2; exit 1; }
echo "== each node spreads new connections over the replicas: 3 requests to node $nodes"
for _ in 1 2 3; do echo "  $(curl -fs --max-time 2 "http://$subnet.$nodes:8080/" || echo no answer)"; done

if ((managers >= 3)); then
  leader=
  for i in $(seq "$managers"); do
    if ctl "$i" info 2>/dev/null | grep -q "Is Leader: true"; then leader=$i; fi
  done
  if [[ -n $leader ]]; then
    other=$((leader % managers + 1))
    echo "== kill -9 the leader (node $leader): node $other keeps serving the control API"
    kill -KILL "$(cat "$base/node-$leader.pid")"
    t0=$(date +%s%N)
    until ctl "$other" service ls >/dev/null 2>&1; do sleep 0.05; done
    echo "control API back after $((($(date +%s%N) - t0) / 1000000)) ms"
    sleep 4  # the new leader marks a manager unreachable after 3 s of silence
    ctl "$other" node ls
    echo "== restarting node $leader: it recovers from its log and rejoins"
    start "$leader" manager
    echo "== the demo service still answers on every node"
    ask_every_node || true
  fi
fi

cat <<EOF

The swarm runs. Use swarmctl against any manager's socket, for example:
  $base/bin/swarmctl --socket $base/node-1.sock node ls
  $base/bin/swarmctl --socket $base/node-2.sock service ls
  curl http://$subnet.1:8080/                                # the demo, from any node
  $base/bin/swarmctl --socket $base/node-1.sock service scale web=5
Logs and state: $base/node-N.log, $base/node-N/
Tear it down:   bash deploy/local-cluster.sh down
EOF
