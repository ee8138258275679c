#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs the build dependencies, builds pw twice
# (warnings as errors; then ASan+UBSan) and runs every test of both builds with ctest, then
# fuzzes the parsers for a few minutes (tests/fuzz/run.sh; PW_FUZZ_SECONDS per target).
# Run as root on Debian 12: the rootless tests run as an unprivileged user this script
# creates ($PW_TEST_USER, default pwtest), and /dev/fuse is made usable as Debian ships it.
# Any test that would skip for lack of a kernel feature fails instead (PW_MUST_WORK=1).
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="$(nproc)"
export PW_MUST_WORK="${PW_MUST_WORK:-1}"
export PW_TEST_USER="${PW_TEST_USER:-pwtest}"

if [ "$(id -u)" -ne 0 ]; then
  echo "tests/run-all.sh: run as root (sudo $0): it installs packages and creates a test user" >&2
  exit 1
fi

step() { printf '\n==> %s\n' "$*"; }

step "dependencies"
"$src/packaging/install-deps.sh"

step "test user and /dev/fuse"
id "$PW_TEST_USER" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$PW_TEST_USER"
[ -e /dev/fuse ] || mknod -m 0666 /dev/fuse c 10 229
chmod 0666 /dev/fuse

# The test user must reach the sources and binaries; a checkout under /root is out of its
# reach, so work on a world-readable copy then.
if ! runuser -u "$PW_TEST_USER" -- test -r "$src/CMakeLists.txt"; then
  work=/var/tmp/pw-tests
  step "copying the sources to $work (the test user cannot read $src)"
  rm -rf "$work"
  mkdir -p "$work"
  tar -C "$src" --exclude='./build*' --exclude=./.git -cf - . | tar -C "$work" -xf -
  chmod -R a+rX "$work"
  src="$work/"
  src="${src%/}"
fi
out="${PW_TEST_BUILD_DIR:-/var/tmp/pw-test-build}"
mkdir -p "$out"
chmod 0755 "$out"

run_suite() {  # name, cmake args...
  local name="$1"
  shift
  local dir="$out/$name"
  step "build ($name)"
  # A build directory configured from another checkout cannot be reused: start it afresh.
  if [ -f "$dir/CMakeCache.txt" ] &&
     ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$src" "$dir/CMakeCache.txt"; then
    rm -rf "$dir"
  fi
  cmake -S "$src" -B "$dir" -DPW_WERROR=ON "$@" >/dev/null
  cmake --build "$dir" -j"$jobs"
  chmod -R a+rX "$dir"
  step "test ($name)"
  (cd "$dir" && ctest --output-on-failure --timeout 600 -j1)
}

run_suite release -DCMAKE_BUILD_TYPE=RelWithDebInfo
# Sanitizers: leaks are checked too, except in processes that deliberately made themselves
# non-dumpable (LeakSanitizer cannot attach to those).
ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}" \
UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}" \
  run_suite asan -DCMAKE_BUILD_TYPE=Debug -DPW_SANITIZE=ON -DPW_STATIC_DEPS=OFF

# Last, the libFuzzer targets (clang, a build dir of their own): four of them, 55 s each by
# default, under four minutes of fuzzing. Their corpus grows in $out/fuzz from run to run.
step "fuzz"
PW_FUZZ_SECONDS="${PW_FUZZ_SECONDS:-55}" "$src/tests/fuzz/run.sh" "$out/fuzz"

step "all tests passed"
