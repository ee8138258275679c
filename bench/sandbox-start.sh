#!/usr/bin/env bash
# Start-and-exit cost of a sandbox: `pw demo-llm -- /bin/true` against its peers, all in one
# invocation on the same machine, reported as ratios (lower is better for pw/peer time).
#   pw cold  no workspace running: starts the supervisor each time (what one-off commands pay)
#   pw warm  a session of the workspace is already open (what a second terminal pays)
#   bwrap    bubblewrap given the same view as demo-llm (tmpfs root, system dirs ro, private
#            home, project rw, new pid/ipc/uts/net namespaces)
#   firejail firejail --noprofile with a private home and no network
#   unshare  bare `unshare -Urmpf true`: the floor for any namespace sandbox
# Usage: bench/sandbox-start.sh PATH/TO/pw [RUNS]   (as an unprivileged user; needs
# hyperfine, bubblewrap and firejail: PW_WITH_BENCH=1 packaging/install-deps.sh)
set -euo pipefail
pw="$(realpath "${1:?usage: $0 PATH/TO/pw [RUNS]}")"
runs="${2:-200}"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
for tool in hyperfine bwrap firejail unshare; do
  command -v "$tool" >/dev/null || { echo "$0: $tool is missing" >&2; exit 1; }
done

work="$(mktemp -d /tmp/pw-bench.XXXXXX)"
trap 'kill $warm_pid 2>/dev/null || true; rm -rf "$work"' EXIT
export HOME="$work/home" XDG_CONFIG_HOME="$work/home/.config" PW_TEMPLATE_DIR="$src/profiles"
unset XDG_RUNTIME_DIR
mkdir -p "$HOME/projects/demo"
proj="$HOME/projects/demo"
"$pw" new demo --dir "$proj" --shell /bin/sh >/dev/null

bwrap_cmd="bwrap --unshare-all --die-with-parent --new-session \
  --tmpfs / --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/sbin /sbin \
  --symlink usr/lib /lib --symlink usr/lib64 /lib64 --ro-bind /etc /etc --ro-bind /opt /opt \
  --ro-bind /sys /sys --proc /proc --dev /dev --tmpfs /tmp --tmpfs $HOME \
  --bind $proj $proj --remount-ro / --chdir $proj /bin/true"
firejail_cmd="firejail --quiet --noprofile --private --net=none --nosound /bin/true"

json="$work/result.json"
hyperfine --warmup 10 --runs "$runs" --export-json "$json" -N \
  -n "pw cold" "$pw demo-llm -- /bin/true" \
  -n "bwrap" "$bwrap_cmd" \
  -n "firejail" "$firejail_cmd" \
  -n "unshare" "unshare -Urmpf /bin/true" >/dev/null

# The warm case: keep one session of the workspace open meanwhile.
"$pw" demo-llm -- /bin/sleep 600 &
warm_pid=$!
sleep 1
hyperfine --warmup 10 --runs "$runs" --export-json "$work/warm.json" -N \
  -n "pw warm" "$pw demo-llm -- /bin/true" >/dev/null
kill $warm_pid

python3 - "$json" "$work/warm.json" <<'PY'
import json, sys, platform
rows = {}
for f in sys.argv[1:]:
    for r in json.load(open(f))["results"]:
        rows[r["command"]] = (r["mean"], r["stddev"], r["median"])
bw = rows["bwrap"][2]
print(f"| command | median (ms) | mean ± sd (ms) | median / bwrap |")
print(f"|---|---|---|---|")
for name in ["pw cold", "pw warm", "bwrap", "firejail", "unshare"]:
    mean, sd, med = rows[name]
    print(f"| {name} | {med*1e3:.2f} | {mean*1e3:.2f} ± {sd*1e3:.2f} | {med/bw:.2f}× |")
print()
print(f"kernel {platform.release()}, {sys.argv[1].split('/')[-1] and ''}runs per command: see script")
PY
