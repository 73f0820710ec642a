#!/bin/sh
# Install the Debian packages nominal needs, only those that are missing.
#   scripts/deps.sh          build + run-time libraries
#   scripts/deps.sh --test   also the tools the tests use (torch for golden data, PIL, ...)
# Used by README, .ci/run and `make deps`, so a fresh machine gets exactly this list.
set -eu

BUILD_PKGS="build-essential pkg-config libdnnl-dev libprotobuf-c-dev protobuf-c-compiler \
libonnx-dev libturbojpeg0-dev libpng-dev libcjson-dev libcmocka-dev \
libopenblas-openmp-dev libcivetweb-dev"
TEST_PKGS="python3 python3-numpy python3-scipy python3-pil python3-torch python3-torchvision python3-onnx \
chromium clang libclang-rt-14-dev valgrind nginx-light curl"

want="$BUILD_PKGS"
if [ "${1:-}" = "--test" ]; then want="$want $TEST_PKGS"; fi

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

if [ -z "$missing" ]; then
    exit 0
fi

echo "deps: installing:$missing" >&2
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
# An update is needed on a fresh machine; a stale list makes installs fail.
$SUDO apt-get update -qq >/dev/null
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
echo "deps: done" >&2
