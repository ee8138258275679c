#!/usr/bin/env bash
# Installs what building and testing pw needs on Debian 12 (bookworm). Run as root.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (or: sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
pkgs=(
  build-essential cmake pkg-config git
  libfuse3-dev fuse3 libsodium-dev libseccomp-dev
  libtomlplusplus-dev libcli11-dev catch2
  util-linux passwd procps
  openssh-client openssl curl
  zsh fish bash-completion         # completion tests: each shell loads its completion
  groff-base man-db bsdextrautils  # man page test: groff, man, col
  dpkg-dev file binutils           # package: cpack's dpkg-shlibdeps and file; objdump
  clang libclang-rt-14-dev         # the fuzz build (tests/fuzz): clang and its libFuzzer runtime
)
# The integration test of the real agent clients installs them with npm (and skips when the
# npm registry is unreachable). A Node.js that brings its own npm (NodeSource's) is kept.
command -v npm >/dev/null 2>&1 || pkgs+=(npm)
if [ "${PW_WITH_BENCH:-0}" = 1 ]; then
  pkgs+=(bubblewrap firejail gocryptfs hyperfine fio)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
