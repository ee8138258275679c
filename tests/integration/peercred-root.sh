#!/bin/sh
# The control socket answers only its own uid. As root, with a workspace of the test user
# running: the test user's hello gets the workspace's namespaces (fds), root's own hello —
# root can reach the 0700 runtime dir — is dropped without a word (SO_PEERCRED).
# usage: peercred-root.sh PW PW_PROBE TEMPLATES
set -u
pw=$1 probe=$2 templates=$3
skip() {
  echo "SKIP: $*" >&2
  [ "${PW_MUST_WORK:-0}" = 1 ] && { echo "PW_MUST_WORK=1: failing instead of skipping" >&2; exit 1; }
  exit 77
}
[ "$(id -u)" = 0 ] || skip "needs root (a second uid to knock on the test user's socket)"
user=${PW_TEST_USER:-pwtest}
id "$user" >/dev/null 2>&1 || skip "no test user $user"
w=$(mktemp -d /tmp/pw-peercred.XXXXXX)
chmod 755 "$w"
mkdir -p "$w/home" "$w/config" "$w/run" "$w/proj"
chmod 700 "$w/run"
cp "$probe" "$w/probe"
chown -R "$user" "$w"
as_user() {
  runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$w/home" XDG_CONFIG_HOME="$w/config" \
    XDG_RUNTIME_DIR="$w/run" PW_TEMPLATE_DIR="$templates" "$@"
}
session=""
cleanup() {
  [ -n "$session" ] && kill "$session" 2>/dev/null
  wait 2>/dev/null
  rm -rf "$w"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

as_user "$pw" new demo --dir "$w/proj" --shell /bin/sh >/dev/null || fail "pw new"
runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$w/home" XDG_CONFIG_HOME="$w/config" \
  XDG_RUNTIME_DIR="$w/run" "$pw" demo -- sleep 30 </dev/null &
session=$!
sock="$w/run/pw/demo.sock"
i=0
while [ ! -S "$sock" ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i + 1)); done
[ -S "$sock" ] || fail "no control socket at $sock"

mine=$(as_user "$w/probe" ctl "$sock" "hello 1 ps")
echo "test user: $mine"
[ "${mine#REPLY }" != "$mine" ] || fail "the owner's request was not answered: $mine"

root_ps=$("$w/probe" ctl "$sock" "hello 1 ps")
root_session=$("$w/probe" ctl "$sock" "hello 1 session intruder")
echo "root: ps -> $root_ps; session -> $root_session"
[ "$root_ps" = CLOSED ] || fail "root's ps request got: $root_ps"
[ "$root_session" = CLOSED ] || fail "root's session request got: $root_session"
# The workspace is unharmed: the owner still gets an answer.
again=$(as_user "$w/probe" ctl "$sock" "hello 1 ps")
[ "${again#REPLY }" != "$again" ] || fail "the workspace stopped answering its owner: $again"
echo "ok"
