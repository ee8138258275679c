#!/usr/bin/env bash
# Tunnel throughput and connect latency: pw's proxy against a direct loopback connection.
# Usage: bench/proxy/run.sh [BUILD_DIR] [MiB] [rounds] [splice|copy] [KiB per direction]   (BUILD_DIR defaults to build; it must
# have built pwcore). Prints two lines for docs/network.md.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$src/build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
g++ -std=c++20 -O2 -I"$src/src" "$src/bench/proxy/proxy_bench.cpp" \
  "$build/src/libpwcore.a" "$build/fusevault/libfusevault_lib.a" \
  $(pkg-config --libs libsodium libseccomp fuse3) -lpthread -o "$out/proxy_bench"
"$out/proxy_bench" "${2:-1024}" "${3:-2000}" "${4:-copy}" "${5:-256}"
