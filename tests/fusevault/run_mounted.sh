#!/bin/sh
# Runs a mounted fusevault test binary so that its mounts cannot outlive it:
#   root     - as root, in a private mount namespace (unshare -m)
#   rootless - as an unprivileged user inside unshare -Urm; when invoked as root that user
#              is PW_TEST_USER (a name or uid; default "pwtest"), via runuser.
# A test that cannot run exits 77 (ctest SKIP), or 1 when PW_MUST_WORK=1.
set -u
mode=$1
shift
skip() {
  echo "SKIP: $*" >&2
  if [ "${PW_MUST_WORK:-0}" = 1 ]; then
    echo "PW_MUST_WORK=1: failing instead of skipping" >&2
    exit 1
  fi
  exit 77
}
case "$mode" in
root)
  [ "$(id -u)" = 0 ] || skip "the root variant needs root"
  exec unshare -m --propagation private -- "$@"
  ;;
rootless)
  if [ "$(id -u)" = 0 ]; then
    u=${PW_TEST_USER:-pwtest}
    name=$(getent passwd "$u" | cut -d: -f1)
    [ -n "$name" ] || skip "no unprivileged test user '$u' (create it or set PW_TEST_USER)"
    runuser -u "$name" -- unshare -Urm true 2>/dev/null || skip "user namespaces unavailable for $name"
    exec runuser -u "$name" -- env TMPDIR=/tmp unshare -Urm -- "$@"
  fi
  unshare -Urm true 2>/dev/null || skip "user namespaces unavailable"
  exec unshare -Urm -- "$@"
  ;;
*)
  echo "usage: run_mounted.sh root|rootless COMMAND..." >&2
  exit 2
  ;;
esac
