#!/usr/bin/env bash
# The project's test command (README, .ci/run): installs what is missing, builds every target
# and runs every test, then prints one line "N passed, N failed" (a test target counts once).
# Extra arguments go to `bazel test`, e.g. tests/run.sh --test_env=RAFT_SIM_SEEDS=20000.
set -uo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh || { echo "0 passed, 1 failed"; exit 1; }

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# --keep_going: one broken target must not hide the results of all the others.
bazel test //... --keep_going --test_summary=short "$@" 2>&1 | tee "$log"
bazel_rc=${PIPESTATUS[0]}

# Summary lines look like "//raft:core_test   (cached) PASSED in 0.4s" or "... FAILED in 2.1s".
passed=$(grep -cE '^//[^ ]+ +(\(cached\) )?PASSED' "$log")
failed=$(grep -cE '^//[^ ]+ +(\(cached\) )?(FAILED|TIMEOUT|NO STATUS|INCOMPLETE|FLAKY|FAILED TO BUILD)' "$log")

# Some tests print a figure worth seeing in CI's output (their logs are otherwise hidden).
for t in raft/sim_test; do
  f="bazel-testlogs/$t/test.log"
  [[ -f $f ]] && grep -E '^seeds: ' "$f" | tail -1 | sed "s|^|//${t%/*}:${t##*/}: |"
done

# A build failure that kept every test from running still has to fail the run.
if ((bazel_rc != 0 && failed == 0)); then
  echo "bazel exited with $bazel_rc (build failure?)"
  failed=1
fi
echo "$passed passed, $failed failed"
((failed == 0))
