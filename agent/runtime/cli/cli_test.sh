#!/usr/bin/env bash
# End-to-end test of swarmd-runtime: load the busybox image, run in the foreground (exit
# code, stdout and stderr kept apart), run detached, ps, logs, health, stop with a grace
# period, rm, image rm and prune. Everything it made goes away on exit, also on failure.
set -euo pipefail
BIN="$PWD/agent/runtime/swarmd-runtime"
MAKE_IMAGE="$PWD/agent/runtime/make_busybox_image"
dir=$(mktemp -d /tmp/cli_test.XXXXXX)
parent="swarm-test-cli-$$"
R=("$BIN" --root "$dir/root" --run-root "$dir/run" --cgroup-parent "$parent")

cleanup() {
  for id in $("${R[@]}" ps -a 2>/dev/null | awk 'NR > 1 {print $1}'); do
    "${R[@]}" rm -f "$id" >/dev/null 2>&1 || true
  done
  rmdir /sys/fs/cgroup/*/"$parent" 2>/dev/null || true
  rm -rf "$dir"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$MAKE_IMAGE" "$dir/layout" >/dev/null
"${R[@]}" image load --layout "$dir/layout" --tag busybox | grep -q '^loaded sha256:' ||
  fail "image load"
"${R[@]}" image ls | grep -q '^docker.io/library/busybox:latest ' || fail "image ls"

rc=0
out=$("${R[@]}" run --rm -h clihost busybox sh -c 'hostname; echo oops >&2; exit 3' \
  2>"$dir/stderr") || rc=$?
[[ $out == clihost ]] || fail "run stdout: '$out'"
[[ $rc == 3 ]] || fail "run exit code: $rc"
grep -qx oops "$dir/stderr" || fail "run stderr: $(cat "$dir/stderr")"

id=$("${R[@]}" run -d --name web --health-cmd 'test -e /tmp/ready' --health-interval 0.1 \
  busybox sh -c 'touch /tmp/ready; echo started; sleep 100')
"${R[@]}" ps | grep -q "^${id:0:12} .* running " || fail "ps: $("${R[@]}" ps)"
for _ in $(seq 100); do
  "${R[@]}" health web | grep -q '^healthy' && break
  sleep 0.05
done
"${R[@]}" health web | grep -q '^healthy' || fail "health: $("${R[@]}" health web)"
[[ $("${R[@]}" logs web) == started ]] || fail "logs: $("${R[@]}" logs web)"
# sleep as PID 1 ignores SIGTERM: the grace period ends in SIGKILL.
[[ $("${R[@]}" stop -t 1 web) == "signaled (137)" ]] || fail "stop"
"${R[@]}" ps -a | grep -q "^${id:0:12} .* exited " || fail "ps -a"
"${R[@]}" rm web
[[ $("${R[@]}" ps -a | wc -l) == 1 ]] || fail "rm left $("${R[@]}" ps -a)"

"${R[@]}" image rm busybox
[[ $("${R[@]}" image prune) == "removed 1 layers" ]] || fail "image prune"
echo "cli_test: all checks passed"
