#!/usr/bin/env bash
# deploy/install.sh as an operator uses it, on two "hosts" (two sets of directories on
# loopback): the files and unit it writes, a second run that changes nothing, a daemon started
# exactly as the unit's ExecStart says, --init on the first, --join with the token from a file
# on the second (and from standard input, once the first join is done: idempotent), bad
# input refused with a clear message, and --uninstall leaving the swarm first. No systemd is
# needed: --no-start writes the files without touching it. Everything goes away on exit.
set -euo pipefail
INSTALL="$PWD/deploy/install.sh"
bins=$(mktemp -d /tmp/install_test.bin.XXXXXX)
cp -L "$PWD/node/swarmd" "$PWD/node/swarm-shim" "$PWD/cli/swarmctl" "$PWD/agent/runtime/swarmd-runtime" "$bins/"
dir=$(mktemp -d /tmp/install_test.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
  rm -rf "$dir" "$bins"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; for h in a b; do [[ -f $dir/$h.log ]] && tail -20 "$dir/$h.log" >&2; done; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
port_a=$(free_port)
port_b=$(free_port)

# The options that make host $1 (listening on port $2).
host() {
  printf '%s\n' --prefix "$dir/$1/usr" --unit-dir "$dir/$1/units" --state-dir "$dir/$1/state" \
    --socket "$dir/$1/swarmd.sock" --listen-addr "127.0.0.1:$2" --bin-dir "$bins" --no-start \
    --extra-args "--executor=simulated --hostname=host-$1"
}
mapfile -t A < <(host a "$port_a")
mapfile -t B < <(host b "$port_b")
# Starts host $1's daemon as systemd would: the unit's ExecStart line.
start() {
  local cmd
  cmd=$(sed -n 's/^ExecStart=//p' "$dir/$1/units/swarmd.service")
  [[ -n $cmd ]] || fail "no ExecStart in the unit of $1"
  # shellcheck disable=SC2086
  $cmd >"$dir/$1.log" 2>&1 &
  pids+=($!)
}
ctl() { "$dir/$1/usr/bin/swarmctl" --socket "$dir/$1/swarmd.sock" "${@:2}"; }

# 1. Files.
out=$(bash "$INSTALL" "${A[@]}" 2>&1) || fail "install a: $out"
for f in usr/bin/swarmd usr/bin/swarm-shim usr/bin/swarmctl usr/bin/swarmd-runtime units/swarmd.service; do
  [[ -f $dir/a/$f ]] || fail "missing $f"
done
[[ -x $dir/a/usr/bin/swarmd ]] || fail "swarmd not executable"
unit="$dir/a/units/swarmd.service"
grep -qx "ExecStart=$dir/a/usr/bin/swarmd --state-dir=$dir/a/state --socket=$dir/a/swarmd.sock --listen-addr=127.0.0.1:$port_a --executor=simulated --hostname=host-a" "$unit" ||
  fail "ExecStart: $(grep ExecStart "$unit")"
grep -qx "Restart=on-failure" "$unit" || fail "no restart on failure"
grep -qx "KillMode=process" "$unit" || fail "containers would die with the daemon"
grep -q "make this node part of a swarm with --init or --join" <<<"$out" || fail "no hint: $out"

# 2. A second run changes nothing.
before=$(stat -c '%Y %n' "$dir"/a/usr/bin/* "$unit")
out=$(bash "$INSTALL" "${A[@]}" 2>&1) || fail "second install: $out"
grep -q "wrote:" <<<"$out" && fail "second run wrote something: $out"
[[ $(stat -c '%Y %n' "$dir"/a/usr/bin/* "$unit") == "$before" ]] || fail "files touched"

# 3. Bad input is refused with what to do.
out=$(bash "$INSTALL" --join 127.0.0.1:1 --token SWMTKN-1-x 2>&1) && fail "--token accepted"
grep -q "not the command line" <<<"$out" || fail "--token message: $out"
out=$(bash "$INSTALL" --join 127.0.0.1:1 2>&1) && fail "join without token accepted"
grep -q "needs --token-file" <<<"$out" || fail "missing token message: $out"
out=$(bash "$INSTALL" --frobnicate 2>&1) && fail "unknown option accepted"
grep -q "unknown option --frobnicate" <<<"$out" || fail "unknown option message: $out"

# 4. --init before the daemon runs says how to finish; with it running, it initializes.
out=$(bash "$INSTALL" "${A[@]}" --init 2>&1) || fail "init without daemon: $out"
grep -q "start swarmd" <<<"$out" || fail "no start hint: $out"
start a
out=$(bash "$INSTALL" "${A[@]}" --init 2>&1) || fail "init: $out"
grep -q "Swarm initialized" <<<"$out" || fail "init output: $out"
out=$(bash "$INSTALL" "${A[@]}" --init 2>&1) || fail "init again: $out"
grep -q "already part of a swarm (active)" <<<"$out" || fail "second init: $out"

# 5. The second host joins with the token from a file; again from standard input is a no-op.
ctl a swarm join-token -q worker >"$dir/token"
chmod 600 "$dir/token"
bash "$INSTALL" "${B[@]}" >/dev/null || fail "install b"
start b
out=$(bash "$INSTALL" "${B[@]}" --join "127.0.0.1:$port_a" --token-file "$dir/token" 2>&1) ||
  fail "join: $out"
grep -qi "joined" <<<"$out" || fail "join output: $out"
out=$(bash "$INSTALL" "${B[@]}" --join "127.0.0.1:$port_a" --token-file - <"$dir/token" 2>&1) ||
  fail "join again: $out"
grep -q "already part of a swarm" <<<"$out" || fail "second join: $out"
nodes=$(ctl a node ls --format '{{.Hostname}}' | sort | tr '\n' ' ')
[[ $nodes == "host-a host-b " ]] || fail "node ls: $nodes"

# 6. Uninstall leaves the swarm first, removes the files, keeps the state.
out=$(bash "$INSTALL" "${B[@]}" --uninstall 2>&1) || fail "uninstall: $out"
grep -q "leaving the swarm" <<<"$out" || fail "uninstall did not leave: $out"
[[ ! -e $dir/b/usr/bin/swarmd && ! -e $dir/b/units/swarmd.service ]] || fail "files left"
[[ -d $dir/b/state ]] || fail "state removed without --purge"
# The manager sees it down once its heartbeats stop (3 periods of 5 s).
for _ in $(seq 1 150); do
  state=$(ctl a node ls --format '{{.Hostname}} {{.Status}}' | sed -n 's/^host-b //p')
  [[ $state == Down ]] && break
  sleep 0.2
done
[[ $state == Down ]] || fail "host-b after leaving: '$state'"
echo PASS
