#!/usr/bin/env bash
# Start-and-exit cost of a sandbox: `pw demo-llm -- /bin/true` against its peers, all in one
# invocation on the same machine, reported as ratios (lower is better for pw/peer time).
#   pw cold  no workspace running: makes the workspace each time (what one-off commands
#            pay; one over within 10 ms starts no supervisor, see docs/design.md)
#   pw warm  a session of the workspace is already open (what a second terminal pays)
#   pw cold 30 ms / bwrap 30 ms  the same with `sleep 0.03` for a command: the supervisor
#            starts while it runs (the difference of the two is what pw's start costs then)
#   bwrap    bubblewrap given the same view as demo-llm (tmpfs root, system dirs ro, private
#            home, project rw, new pid/ipc/uts/net namespaces)
#   firejail firejail --noprofile with a private home and no network
#   unshare  bare `unshare -Urmpf true`: the floor for any namespace sandbox
# Usage: bench/sandbox-start.sh PATH/TO/pw [RUNS]   (as an unprivileged user; PW_BENCH_ROUNDS
# (default 5) hyperfine calls share the RUNS; needs
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
bwrap_long="${bwrap_cmd% /bin/true} /bin/sleep 0.03"
firejail_cmd="firejail --quiet --noprofile --private --net=none --nosound /bin/true"

# The warm case: a second workspace (same template, same dir) keeps a session open, so
# both cases and every peer run in the same hyperfine call. A run is ROUNDS such calls of
# RUNS/ROUNDS runs each, so that a slow spell of the machine hits every command alike; the
# result is the median over all runs of each command.
"$pw" new warm --dir "$proj" --shell /bin/sh >/dev/null
"$pw" warm-llm -- /bin/sleep 3600 &
warm_pid=$!
for _ in $(seq 50); do "$pw" ps 2>/dev/null | grep -q warm-llm && break; sleep 0.1; done
"$pw" ps | grep -q warm-llm || { echo "$0: the warm workspace did not start" >&2; exit 1; }

rounds="${PW_BENCH_ROUNDS:-5}"
lock="/tmp/pw-$(id -u)/demo-llm.lock"
per=$(( (runs + rounds - 1) / rounds ))
for r in $(seq "$rounds"); do
  # Cold means cold: before each run, wait until the last run's supervisor has exited
  # (it does so just after its last session; a run that came sooner would join it).
  hyperfine --warmup 5 --runs "$per" --export-json "$work/round$r.json" -N \
    --prepare "flock -w 5 $lock true" \
    -n "pw cold" "$pw demo-llm -- /bin/true" \
    -n "pw warm" "$pw warm-llm -- /bin/true" \
    -n "bwrap" "$bwrap_cmd" \
    -n "firejail" "$firejail_cmd" \
    -n "unshare" "unshare -Urmpf /bin/true" \
    -n "pw cold 30 ms" "$pw demo-llm -- /bin/sleep 0.03" \
    -n "bwrap 30 ms" "$bwrap_long" >/dev/null
done
kill $warm_pid

python3 - "$work"/round*.json <<'PY'
import json, sys, platform, statistics
times = {}
for f in sys.argv[1:]:
    for r in json.load(open(f))["results"]:
        times.setdefault(r["command"], []).extend(r["times"])
med = {k: statistics.median(v) for k, v in times.items()}
bw = med["bwrap"]
print(f"| command | median (ms) | mean ± sd (ms) | median / bwrap |")
print(f"|---|---|---|---|")
for name in ["pw cold", "pw warm", "bwrap", "firejail", "unshare"]:
    t = times[name]
    print(f"| {name} | {med[name]*1e3:.2f} | {statistics.mean(t)*1e3:.2f} ± {statistics.stdev(t)*1e3:.2f} | {med[name]/bw:.2f}× |")
print()
long_pw, long_bw = med["pw cold 30 ms"], med["bwrap 30 ms"]
print(f"With a 30 ms command (the supervisor starts while it runs): pw cold {long_pw*1e3:.2f} ms, "
      f"bwrap {long_bw*1e3:.2f} ms, difference {(long_pw - long_bw)*1e3:+.2f} ms.")
print()
print(f"kernel {platform.release()}, {len(times['bwrap'])} runs per command in {len(sys.argv) - 1} rounds")
PY
