#!/usr/bin/env bash
# Builds pw's libFuzzer targets with clang in BUILD_DIR and runs each one for a bounded time,
# starting from the seed corpus in tests/fuzz/corpus/<target>/ (never written to: new inputs
# go to BUILD_DIR/fuzz-corpus/<target>/). Fails on the first crash, sanitizer report, leak,
# timeout or violated property; the input that did it is kept in BUILD_DIR/fuzz-artifacts/.
#
#   tests/fuzz/run.sh BUILD_DIR [SECONDS_PER_TARGET]     (default: $PW_FUZZ_SECONDS or 60)
#   PW_FUZZ_TARGETS="profile allowlist" tests/fuzz/run.sh build-fuzz 10     a subset
#
# Reproduce a failure with: BUILD_DIR/tests/fuzz/fuzz_TARGET BUILD_DIR/fuzz-artifacts/FILE
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dir="${1:?usage: $0 BUILD_DIR [SECONDS_PER_TARGET]}"
secs="${2:-${PW_FUZZ_SECONDS:-60}}"
targets="${PW_FUZZ_TARGETS:-profile allowlist vault_config vault_content}"
jobs="${PW_FUZZ_JOBS:-$(nproc)}"

command -v clang++ >/dev/null || { echo "run.sh: clang++ not found (packaging/install-deps.sh installs it)" >&2; exit 1; }

mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
# A build dir configured from another checkout cannot be reused (its corpus can).
if [ -f "$dir/CMakeCache.txt" ] && ! grep -qxF "CMAKE_HOME_DIRECTORY:INTERNAL=$src" "$dir/CMakeCache.txt"; then
  rm -rf "$dir/CMakeCache.txt" "$dir/CMakeFiles"
fi
echo "==> configure and build the fuzz targets in $dir"
cmake -S "$src" -B "$dir" -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPW_FUZZ=ON -DPW_BUILD_TESTS=OFF -DPW_STATIC_DEPS=OFF \
  -DPW_WERROR=ON >/dev/null
bins=()
for t in $targets; do bins+=("fuzz_$t"); done
cmake --build "$dir" -j"$jobs" --target "${bins[@]}"

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
for t in $targets; do
  work="$dir/fuzz-corpus/$t"
  artifacts="$dir/fuzz-artifacts"
  log="$dir/fuzz-$t.log"
  mkdir -p "$work" "$artifacts"
  opts=(-max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1
        -artifact_prefix="$artifacts/$t-")
  if [ -f "$src/tests/fuzz/$t.dict" ]; then opts+=(-dict="$src/tests/fuzz/$t.dict"); fi
  echo "==> fuzz_$t for ${secs}s"
  if ! "$dir/tests/fuzz/fuzz_$t" "${opts[@]}" "$work" "$src/tests/fuzz/corpus/$t" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    echo "fuzz_$t FAILED (log: $log); the input is in $artifacts/" >&2
    exit 1
  fi
  runs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")"
  echo "    ok: ${runs:-?} inputs, corpus $(find "$work" -type f | wc -l) files"
done
echo "==> all fuzz targets ran clean"
