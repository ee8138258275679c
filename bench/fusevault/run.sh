#!/bin/bash
# fusevault benchmark: 1 GiB sequential write and read, and 10,000 x 4 KiB small files
# (create+write, stat, read, delete), on fusevault (its default format, 2 where the CPU has
# AES instructions, and format 1), gocryptfs, and fusevault built with
# -DFUSEVAULT_BENCH_NOCRYPT=ON (our FUSE machinery without encryption). Backing store is a
# tmpfs (/dev/shm) so the numbers measure the filesystems, not the disk.
#
# usage: bench/fusevault/run.sh [--fusevault BIN] [--nocrypt BIN] [--out FILE] [--reps N]
# Without --nocrypt, builds it in build-fv-nocrypt next to the source tree.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
fv=$repo/build-fv/fusevault/fusevault
nocrypt=""
out=$repo/docs/benchmarks-fusevault.md
reps=3
while [ $# -gt 0 ]; do
  case $1 in
  --fusevault) fv=$2; shift 2 ;;
  --nocrypt) nocrypt=$2; shift 2 ;;
  --out) out=$2; shift 2 ;;
  --reps) reps=$2; shift 2 ;;
  *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x "$fv" ] || { echo "no fusevault binary at $fv (build target fusevault first)" >&2; exit 1; }
if [ -z "$nocrypt" ]; then
  cmake -S "$repo" -B "$repo/build-fv-nocrypt" -DFUSEVAULT_BENCH_NOCRYPT=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$repo/build-fv-nocrypt" --target fusevault -j"$(nproc)" >/dev/null
  nocrypt=$repo/build-fv-nocrypt/fusevault/fusevault
fi
command -v gocryptfs >/dev/null || { echo "gocryptfs not installed" >&2; exit 1; }

work=$(mktemp -d /dev/shm/fv-bench-XXXXXX)
server=""
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null || true
  for m in "$work"/*/mnt; do umount -l "$m" 2>/dev/null || fusermount3 -uz "$m" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
cc -O2 -o "$work/smallfiles" "$here/smallfiles.c"
printf 'bench passphrase\n' >"$work/pass"

now() { date +%s.%N; }
wait_mount() {
  for _ in $(seq 500); do
    [ "$(stat -f -c %T "$1" 2>/dev/null)" = fuseblk ] || [ "$(stat -f -c %t "$1" 2>/dev/null)" = 65735546 ] && return 0
    sleep 0.01
  done
  echo "mount of $1 did not appear" >&2
  exit 1
}
# mount_fs KIND DIR: starts the server in the foreground (background job), sets $server.
mount_fs() {
  local kind=$1 d=$2
  case $kind in
  fusevault | fusevault1) "$fv" mount "$d/cipher" "$d/mnt" -f --passphrase-file "$work/pass" & ;;
  nocrypt) "$nocrypt" mount "$d/cipher" "$d/mnt" -f --passphrase-file "$work/pass" & ;;
  gocryptfs) gocryptfs -q -f -passfile "$work/pass" "$d/cipher" "$d/mnt" & ;;
  esac
  server=$!
  wait_mount "$d/mnt"
}
umount_fs() {
  local d=$1
  umount "$d/mnt" 2>/dev/null || fusermount3 -u "$d/mnt"
  wait "$server" 2>/dev/null || true
  server=""
}
# This kind of virtual machine hands freed guest memory back to its host (free page
# reporting), and the first touch of such a page costs several microseconds: a timed phase
# that happens to allocate its page cache and tmpfs pages from memory handed back a moment
# earlier ran up to 3x slower than the same phase on memory still backed. Touching and
# freeing more than a phase allocates just before it makes its pages come from backed memory.
warm_memory() {
  head -c 3G /dev/zero >"$work/warm" 2>/dev/null || true
  rm -f "$work/warm"
}
peak_rss_kb() { awk '/VmHWM/ {print $2}' "/proc/$server/status" 2>/dev/null || echo 0; }

declare -A R
kinds="fusevault fusevault1 gocryptfs nocrypt"
for kind in $kinds; do
  d=$work/$kind
  mkdir -p "$d/cipher" "$d/mnt"
  case $kind in
  fusevault) "$fv" init "$d/cipher" --passphrase-file "$work/pass" --kdf-ops 1 --kdf-mem-mib 8 >/dev/null ;;
  fusevault1) "$fv" init "$d/cipher" --format 1 --passphrase-file "$work/pass" --kdf-ops 1 --kdf-mem-mib 8 >/dev/null ;;
  nocrypt) "$nocrypt" init "$d/cipher" --passphrase-file "$work/pass" --kdf-ops 1 --kdf-mem-mib 8 >/dev/null ;;
  gocryptfs) gocryptfs -q -init -scryptn 10 -passfile "$work/pass" "$d/cipher" >/dev/null ;;
  esac
  R[$kind,w]=999999 R[$kind,r]=999999 R[$kind,s]=999999 R[$kind,rss]=0 R[$kind,phases]=""
done
# Repetitions are interleaved across the filesystems so that background load on a
# shared machine hits all of them alike; the best run of each is reported.
for rep in $(seq "$reps"); do
  for kind in $kinds; do
    d=$work/$kind
    mount_fs "$kind" "$d"
    warm_memory
    t0=$(now)
    dd if=/dev/zero of="$d/mnt/big" bs=1M count=1024 conv=fsync status=none
    t1=$(now)
    r=$(peak_rss_kb); [ "$r" -gt "${R[$kind,rss]}" ] && R[$kind,rss]=$r
    umount_fs "$d"  # cold kernel cache for the read
    mount_fs "$kind" "$d"
    warm_memory
    t2=$(now)
    dd if="$d/mnt/big" of=/dev/null bs=1M status=none
    t3=$(now)
    rm -f "$d/mnt/big"
    warm_memory
    s=$("$work/smallfiles" "$d/mnt" 10000 4096)
    r=$(peak_rss_kb); [ "$r" -gt "${R[$kind,rss]}" ] && R[$kind,rss]=$r
    umount_fs "$d"
    w=$(echo "$t1 - $t0" | bc -l); rd=$(echo "$t3 - $t2" | bc -l); st=$(echo "$s" | awk '{print $5}')
    [ "$(echo "$w < ${R[$kind,w]}" | bc)" = 1 ] && R[$kind,w]=$w
    [ "$(echo "$rd < ${R[$kind,r]}" | bc)" = 1 ] && R[$kind,r]=$rd
    if [ "$(echo "$st < ${R[$kind,s]}" | bc)" = 1 ]; then R[$kind,s]=$st; R[$kind,phases]=$s; fi
    echo "$kind rep $rep: write ${w}s read ${rd}s small ${s} (load $(cut -d' ' -f1 /proc/loadavg))" >&2
  done
done

mbps() { echo "scale=0; 1024 / $1" | bc -l; }
ratio() { echo "scale=2; $2 / $1" | bc -l; }  # time ratio: theirs / ours = our speed relative
{
  echo "# fusevault benchmarks"
  echo
  echo "Generated by \`bench/fusevault/run.sh\` on $(date -u +%Y-%m-%d) ($(uname -r), $(nproc) cores,"
  echo "backing store tmpfs, best of $reps runs). $(gocryptfs -version 2>/dev/null | head -1 | cut -d";" -f1)."
  echo "Sequential: \`dd bs=1M\` of 1 GiB (write with conv=fsync; read after a remount)."
  echo "Small files: 10,000 files of 4 KiB in 100 directories: create+write, stat, read, delete."
  echo
  echo "| | fusevault (format $("$fv" info "$work/fusevault/cipher" | awk '/format version/ {print $3}')) | fusevault format 1 | gocryptfs | fusevault no-crypto |"
  echo "|---|---|---|---|---|"
  echo "| seq write MB/s | $(mbps "${R[fusevault,w]}") | $(mbps "${R[fusevault1,w]}") | $(mbps "${R[gocryptfs,w]}") | $(mbps "${R[nocrypt,w]}") |"
  echo "| seq read MB/s | $(mbps "${R[fusevault,r]}") | $(mbps "${R[fusevault1,r]}") | $(mbps "${R[gocryptfs,r]}") | $(mbps "${R[nocrypt,r]}") |"
  echo "| small files total s | ${R[fusevault,s]} | ${R[fusevault1,s]} | ${R[gocryptfs,s]} | ${R[nocrypt,s]} |"
  echo "| small: create/stat/read/delete s | ${R[fusevault,phases]% *} | ${R[fusevault1,phases]% *} | ${R[gocryptfs,phases]% *} | ${R[nocrypt,phases]% *} |"
  echo "| peak server RSS MiB | $((R[fusevault,rss] / 1024)) | $((R[fusevault1,rss] / 1024)) | $((R[gocryptfs,rss] / 1024)) | $((R[nocrypt,rss] / 1024)) |"
  echo
  echo "Ratios (speed of fusevault relative to the other; > 1 means fusevault is faster):"
  echo
  echo "| | vs gocryptfs | target | vs no-crypto | target |"
  echo "|---|---|---|---|---|"
  echo "| seq write | $(ratio "${R[fusevault,w]}" "${R[gocryptfs,w]}") | ≥ 1.0 | $(ratio "${R[fusevault,w]}" "${R[nocrypt,w]}") | ≥ 0.7 |"
  echo "| seq write, format 1 | $(ratio "${R[fusevault1,w]}" "${R[gocryptfs,w]}") | | $(ratio "${R[fusevault1,w]}" "${R[nocrypt,w]}") | |"
  echo "| seq read | $(ratio "${R[fusevault,r]}" "${R[gocryptfs,r]}") | ≥ 1.0 | $(ratio "${R[fusevault,r]}" "${R[nocrypt,r]}") | ≥ 0.7 |"
  echo "| seq read, format 1 | $(ratio "${R[fusevault1,r]}" "${R[gocryptfs,r]}") | | $(ratio "${R[fusevault1,r]}" "${R[nocrypt,r]}") | |"
  echo "| small files | $(ratio "${R[fusevault,s]}" "${R[gocryptfs,s]}") | ≥ 1.2 | $(ratio "${R[fusevault,s]}" "${R[nocrypt,s]}") | ≥ 0.7 |"
} >"$out"
cat "$out"
