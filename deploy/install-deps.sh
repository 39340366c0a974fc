#!/usr/bin/env bash
# Installs every Debian package that building, testing and running the project needs.
# Idempotent: when everything is present it only checks and returns within a second or two.
set -euo pipefail

packages=(
  # build
  bazel-bootstrap build-essential pkg-config clang-format git
  # libraries linked through //third_party
  libgrpc++-dev libgrpc-dev protobuf-compiler protobuf-compiler-grpc libprotobuf-dev
  libabsl-dev libssl-dev librocksdb-dev libseccomp-dev libgtest-dev libgmock-dev
  libbenchmark-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev libfmt-dev libspdlog-dev
  libcurl4-openssl-dev libarchive-dev libnl-3-dev libnl-route-3-dev libnftables-dev libcap-dev
  # runtime and tests
  iproute2 nftables busybox-static
  # runtime tests and bench: a real registry filled by skopeo, and the peers we measure against
  docker-registry skopeo crun runc libcrypt-dev
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
if [[ $(id -u) -ne 0 ]]; then
  echo "install-deps: need root to install packages (run with sudo)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
