#!/usr/bin/env bash
# Installs swarmd and swarmctl on a host with a systemd unit, and makes the host a node of a
# swarm: a new one (--init) or an existing one (--join ADDR with a token from a file or
# standard input, never from the command line, so it stays out of shell history and `ps`).
# Running it again changes only what differs; --uninstall leaves the swarm first.
#
#   sudo deploy/install.sh --init [--advertise-addr IP:PORT]
#   sudo deploy/install.sh --join 10.0.0.1:4242 --token-file /root/worker.token
#   swarmctl swarm join-token -q worker | ssh root@host 'deploy/install.sh --join 10.0.0.1:4242 --token-file -'
#   sudo deploy/install.sh --uninstall [--force] [--purge]
#
# Options:
#   --listen-addr HOST:PORT    cluster traffic (default 0.0.0.0:4242)
#   --advertise-addr HOST:PORT what other nodes dial (default: swarmd's choice)
#   --state-dir DIR            the node's state (default /var/lib/swarmd)
#   --socket PATH              the local API (default /var/run/swarmd.sock)
#   --prefix DIR               where the binaries go (default /usr/local)
#   --bin-dir DIR              take swarmd, swarm-shim, swarmctl and swarmd-runtime from DIR instead of
#                              building them with Bazel
#   --extra-args "ARGS"        more swarmd flags for the unit (e.g. "--label zone=a")
#   --unit-dir DIR             where the unit goes (default /etc/systemd/system)
#   --no-start                 write the files, do not touch systemd (packaging, tests; init
#                              and join still run when swarmd answers on the socket)
#   --force                    with --uninstall: leave even if it costs the managers' quorum
#   --purge                    with --uninstall: remove the state directory too
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "install.sh: $*" >&2; exit 1; }

action=install
mode=""
join_addr=""
token_file=""
listen_addr="0.0.0.0:4242"
advertise_addr=""
state_dir=/var/lib/swarmd
socket=/var/run/swarmd.sock
prefix=/usr/local
bin_dir=""
extra_args=""
unit_dir=/etc/systemd/system
start=1
force=0
purge=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --init) mode=init ;;
    --join) mode=join; join_addr="${2:?--join needs the address of a manager (HOST:PORT)}"; shift ;;
    --token-file) token_file="${2:?--token-file needs a file, or - for standard input}"; shift ;;
    --token) die "the token is read from a file or standard input (--token-file FILE|-), not the command line, so it stays out of shell history" ;;
    --listen-addr) listen_addr="${2:?}"; shift ;;
    --advertise-addr) advertise_addr="${2:?}"; shift ;;
    --state-dir) state_dir="${2:?}"; shift ;;
    --socket) socket="${2:?}"; shift ;;
    --prefix) prefix="${2:?}"; shift ;;
    --bin-dir) bin_dir="${2:?}"; shift ;;
    --extra-args) extra_args="${2?}"; shift ;;
    --unit-dir) unit_dir="${2:?}"; shift ;;
    --no-start) start=0 ;;
    --uninstall) action=uninstall ;;
    --force) force=1 ;;
    --purge) purge=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option $1 (see --help)" ;;
  esac
  shift
done
[[ $mode == join && -z $token_file ]] && die "--join needs --token-file FILE (or - to read standard input); a manager prints the token with: swarmctl swarm join-token -q worker"
[[ $mode != join && -n $token_file ]] && die "--token-file goes with --join"
[[ $start == 1 && $(id -u) != 0 ]] && die "run as root (--no-start only writes the files)"

bin="$prefix/bin"
unit="$unit_dir/swarmd.service"
swarmctl() { "$bin/swarmctl" --socket "$socket" "$@"; }
have_systemd() { [[ $start == 1 ]] && command -v systemctl >/dev/null && [[ -d /run/systemd/system ]]; }

# Writes $2 (contents) to $1 if it differs; says what it did.
put() {
  local path=$1 content=$2 mode=$3
  if [[ -f $path ]] && [[ "$(cat "$path")" == "$content" ]]; then
    echo "unchanged: $path"
    return 1
  fi
  mkdir -p "$(dirname "$path")"
  printf '%s\n' "$content" >"$path.tmp"
  chmod "$mode" "$path.tmp"
  mv "$path.tmp" "$path"
  echo "wrote: $path"
}

# The swarm state as swarmctl info says it: active, locked, inactive, or "" when swarmd does
# not answer.
swarm_state() { swarmctl info 2>/dev/null | sed -n 's/^Swarm: //p' | head -1; }

wait_for_swarmd() {
  for _ in $(seq 1 100); do
    [[ -S $socket ]] && [[ -n "$(swarm_state)" ]] && return 0
    sleep 0.1
  done
  return 1
}

if [[ $action == uninstall ]]; then
  if [[ -x $bin/swarmctl ]] && [[ "$(swarm_state)" =~ ^(active|locked)$ ]]; then
    echo "leaving the swarm"
    if [[ $force == 1 ]]; then swarmctl swarm leave --force; else swarmctl swarm leave; fi ||
      die "could not leave the swarm (a manager whose departure would cost the quorum needs --force, or demote it first)"
  fi
  if have_systemd; then
    systemctl disable --now swarmd.service 2>/dev/null || true
  fi
  rm -f "$unit" "$bin/swarmd" "$bin/swarm-shim" "$bin/swarmctl" "$bin/swarmd-runtime"
  have_systemd && systemctl daemon-reload
  if [[ $purge == 1 ]]; then
    rm -rf "${state_dir:?}" /var/run/swarmd
    echo "removed swarmd, its unit and its state ($state_dir, /var/run/swarmd)"
  else
    echo "removed swarmd and its unit; the state stays in $state_dir (--purge removes it)"
  fi
  exit 0
fi

# 1. The binaries.
if [[ -z $bin_dir ]]; then
  command -v bazel >/dev/null || die "bazel is missing: run deploy/install-deps.sh, or give prebuilt binaries with --bin-dir"
  echo "building swarmd, swarmctl and swarmd-runtime"
  bazel build -c opt //node:swarmd //cli:swarmctl //agent/runtime:swarmd-runtime >/dev/null 2>&1 ||
    die "the build failed: run 'bazel build -c opt //node:swarmd //cli:swarmctl //agent/runtime:swarmd-runtime' to see why"
  out="$(bazel info -c opt bazel-bin 2>/dev/null)"
  bin_dir=$(mktemp -d)
  trap 'rm -rf "$bin_dir"' EXIT
  cp "$out/node/swarmd" "$out/node/swarm-shim" "$out/cli/swarmctl" "$out/agent/runtime/swarmd-runtime" "$bin_dir/"
fi
mkdir -p "$bin"
changed_binaries=0
for b in swarmd swarm-shim swarmctl swarmd-runtime; do
  [[ -f $bin_dir/$b ]] || die "$bin_dir/$b is missing"
  if [[ -f $bin/$b ]] && cmp -s "$bin_dir/$b" "$bin/$b"; then
    echo "unchanged: $bin/$b"
  else
    install -m 0755 "$bin_dir/$b" "$bin/$b.tmp" && mv "$bin/$b.tmp" "$bin/$b"
    echo "wrote: $bin/$b"
    changed_binaries=1
  fi
done

# 2. The unit. swarmd starts inactive and keeps its role in the state directory, so the same
# unit serves every node; init and join are calls on the running daemon.
exec_start="$prefix/bin/swarmd --state-dir=$state_dir --socket=$socket --listen-addr=$listen_addr"
[[ -n $advertise_addr ]] && exec_start+=" --advertise-addr=$advertise_addr"
[[ -n $extra_args ]] && exec_start+=" $extra_args"
unit_text="[Unit]
Description=swarmd: swarm node daemon (agent, and manager when the node is one)
Documentation=https://github.com/swarm/swarm
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
ExecStart=$exec_start
Restart=on-failure
RestartSec=2s
# Containers outlive a restart of swarmd by design (their shims hold them, and the restarted
# daemon adopts them): stop only the daemon itself.
KillMode=process
# swarmd makes the containers' cgroups below its own.
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
TasksMax=infinity

[Install]
WantedBy=multi-user.target"
unit_changed=0
put "$unit" "$unit_text" 0644 && unit_changed=1

if have_systemd; then
  systemctl daemon-reload
  systemctl enable swarmd.service >/dev/null 2>&1
  if ! systemctl is-active --quiet swarmd.service; then
    systemctl start swarmd.service
  elif [[ $unit_changed == 1 || $changed_binaries == 1 ]]; then
    echo "restarting swarmd (new binaries or unit; running containers stay)"
    systemctl restart swarmd.service
  fi
fi

# 3. The swarm.
[[ -z $mode ]] && { echo "installed; make this node part of a swarm with --init or --join"; exit 0; }
if ! wait_for_swarmd; then
  [[ $start == 0 ]] &&
    { echo "installed; start swarmd (systemctl start swarmd), then run this again with the same --$mode to finish"; exit 0; }
  die "swarmd does not answer on $socket (journalctl -u swarmd says why)"
fi
state="$(swarm_state)"
if [[ $state == active || $state == locked ]]; then
  echo "this node is already part of a swarm ($state); nothing to do"
  exit 0
fi
if [[ $mode == init ]]; then
  args=(swarm init)
  [[ -n $advertise_addr ]] && args+=(--advertise-addr "$advertise_addr")
  swarmctl "${args[@]}"
else
  if [[ $token_file == - ]]; then
    IFS= read -r token || die "no token on standard input"
  else
    [[ -r $token_file ]] || die "cannot read the token file $token_file"
    token="$(tr -d '[:space:]' <"$token_file")"
  fi
  [[ -n $token ]] || die "the join token is empty"
  args=(swarm join --token -)
  [[ -n $advertise_addr ]] && args+=(--advertise-addr "$advertise_addr")
  printf '%s\n' "$token" | swarmctl "${args[@]}" "$join_addr"
fi
