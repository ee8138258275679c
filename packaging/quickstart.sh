#!/usr/bin/env bash
# Quick start on a fresh Debian 12 machine: install the build dependencies (with sudo when
# not root), build pw, and run its main job on a demo project (packaging/demo.sh).
set -euo pipefail
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
$sudo "$src/packaging/install-deps.sh"
cmake -S "$src" -B "$src/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPW_BUILD_TESTS=OFF >/dev/null
cmake --build "$src/build" -j"$(nproc)" --target pw
exec "$src/packaging/demo.sh" "$src/build/src/pw"
