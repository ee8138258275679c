#!/bin/sh
# Runs a test program as an unprivileged user: as is when not root, else as $PW_TEST_USER
# (created by .ci/run). Rootless is the point of these tests; root would pass for bad reasons.
set -eu
if [ "$(id -u)" != 0 ]; then
  exec "$@"
fi
user="${PW_TEST_USER:-pwtest}"
if ! id "$user" >/dev/null 2>&1; then
  echo "run-as-user.sh: user '$user' does not exist (create it, or set PW_TEST_USER)" >&2
  [ "${PW_MUST_WORK:-0}" = 1 ] && exit 1
  exit 77
fi
exec runuser -u "$user" -- env -i PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 TERM=dumb \
  HOME="$(getent passwd "$user" | cut -d: -f6)" PW_MUST_WORK="${PW_MUST_WORK:-0}" "$@"
