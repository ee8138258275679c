#!/usr/bin/env bash
# Builds the Debian package from a build dir (cpack -G DEB), inspects it (file list, control
# fields, Depends against what the binaries really link), unpacks it into a scratch root with
# dpkg -x and runs what it installed from there.
# usage: test-deb.sh BUILD_DIR SOURCE_DIR
set -uo pipefail

build=$(realpath "$1")
src=$(realpath "$2")
missing=()
for tool in cpack dpkg-deb dpkg-shlibdeps objdump file man; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} (packaging/install-deps.sh installs dpkg-dev, file, binutils, man-db)" >&2
  [ "${PW_MUST_WORK:-0}" = 1 ] && exit 1
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# 1. Build it.
if ! (cd "$tmp" && cpack -G DEB --config "$build/CPackConfig.cmake" -B "$tmp/out") >"$tmp/cpack.log" 2>&1; then
  cat "$tmp/cpack.log" >&2
  echo "cpack failed" >&2
  exit 1
fi
debs=("$tmp"/out/*.deb)
[ ${#debs[@]} = 1 ] && [ -f "${debs[0]}" ] || { echo "expected one .deb, got: ${debs[*]}" >&2; exit 1; }
deb=${debs[0]}
echo "built $(basename "$deb")"

# 2. Control fields.
field() { dpkg-deb -f "$deb" "$1"; }
version=$("$build/src/pw" --version | sed 's/^pw //')
[ "$(field Package)" = pw ] || fail "Package: $(field Package)"
[ "$(field Architecture)" = "$(dpkg --print-architecture)" ] || fail "Architecture: $(field Architecture)"
case $(field Version) in
  "$version" | "$version~testhooks") ;;
  *) fail "Version: $(field Version), pw --version says $version" ;;
esac
if grep -qx 'PW_TEST_HOOKS:BOOL=ON' "$build/CMakeCache.txt"; then
  [ "$(field Version)" = "$version~testhooks" ] || fail "a test-hooks build must be versioned ~testhooks"
fi
[ -n "$(field Maintainer)" ] || fail "no Maintainer"
[ -n "$(field Description)" ] || fail "no Description"

# Depends: exactly the packages that own the shared libraries pw and fusevault load, each at
# most once, with versions from dpkg-shlibdeps; nothing for what is linked statically.
depends=$(field Depends)
echo "Depends: $depends"
dep_names=$(tr ',' '\n' <<<"$depends" | sed 's/^ *//; s/ .*//; s/:.*//' | sed '/^$/d' | sort -u)
needed=$( { objdump -p "$build/src/pw"; objdump -p "$build/fusevault/fusevault"; } |
  awk '$1 == "NEEDED" { print $2 }' | sort -u)
[ -n "$needed" ] || fail "objdump found no NEEDED entries"
# The package owning each NEEDED library, where the loader finds it (dpkg knows a file by the
# path its package ships, /lib or /usr/lib, so ask for both).
resolved=$( { ldd "$build/src/pw"; ldd "$build/fusevault/fusevault"; } 2>/dev/null)
want=$(for lib in $needed; do
  # "libc.so.6 => /lib/.../libc.so.6 (0x...)", or for the loader "/lib64/ld-linux-x86-64.so.2 (0x...)"
  path=$(awk -v l="$lib" '$1 == l && $2 == "=>" { print $3; exit }
                          substr($1, length($1) - length(l)) == "/" l { print $1; exit }' <<<"$resolved")
  owner=
  [ -n "$path" ] || { echo "?$lib"; continue; }
  for p in "$path" "$(realpath -m "$path")" "${path#/usr}" "/usr${path#/usr}"; do
    owner=$(dpkg -S "$p" 2>/dev/null | head -1 | cut -d: -f1) && [ -n "$owner" ] && break
  done
  echo "${owner:-?$lib}"
done | sort -u)
if grep -q '^?' <<<"$want"; then fail "cannot resolve: $(grep '^?' <<<"$want" | tr '\n' ' ')"; fi
[ "$dep_names" = "$want" ] ||
  fail "Depends names [$(echo $dep_names)], but the binaries load libraries of [$(echo $want)]"
grep -qw libc6 <<<"$dep_names" || fail "Depends lacks libc6"
# fusermount3 is not pw's: only a Recommends, for standalone fusevault mounts.
grep -qw fuse3 <<<"$dep_names" && fail "Depends names fuse3; pw mounts without fusermount3"
grep -qw fuse3 <<<"$(field Recommends)" || fail "Recommends lacks fuse3"
if grep -qx 'PW_STATIC_DEPS:BOOL=ON' "$build/CMakeCache.txt"; then
  for lib in libsodium libseccomp libfuse3 libstdc++; do
    grep -q "^$lib" <<<"$dep_names" && fail "a static build depends on $lib"
  done
fi

# 3. The file list.
dpkg-deb -c "$deb" >"$tmp/list"
for f in usr/bin/pw usr/bin/fusevault \
         usr/share/man/man1/pw.1.gz usr/share/man/man5/pw-profile.5.gz \
         usr/share/bash-completion/completions/pw usr/share/zsh/vendor-completions/_pw \
         usr/share/fish/vendor_completions.d/pw.fish \
         usr/share/pw/profiles/human.toml usr/share/pw/profiles/agent-claude.toml \
         usr/share/pw/profiles/agent-codex.toml usr/share/pw/profiles/agent-generic.toml; do
  grep -qE " \./$f$" "$tmp/list" || fail "the package lacks /$f"
done
grep -E ' \./usr/bin/(pw|fusevault)$' "$tmp/list" | grep -qv '^-rwxr-xr-x root/root' &&
  fail "binaries not 0755 root:root: $(grep -E '/usr/bin/' "$tmp/list")"
grep -vE ' \./usr/' "$tmp/list" | grep -q . && fail "files outside /usr: $(grep -vE ' \./usr/' "$tmp/list")"
grep -qE '^-..[sS]|^-.....[sS]' "$tmp/list" && fail "setuid or setgid files in the package"

# 4. Unpacked into a scratch root, what it installed works from there.
root=$tmp/root
dpkg -x "$deb" "$root" || { fail "dpkg -x failed"; root=; }
if [ -n "$root" ]; then
  out=$("$root/usr/bin/pw" --version 2>&1) && [ "$out" = "pw $version" ] ||
    fail "unpacked pw --version: $out"
  out=$("$root/usr/bin/pw" --help 2>&1) && grep -q '^Subcommands:' <<<"$out" ||
    fail "unpacked pw --help: $out"
  "$root/usr/bin/fusevault" --help >/dev/null 2>&1 || fail "unpacked fusevault --help fails"
  # Its templates are found beside it: `pw new` says where it read them from.
  mkdir -p "$tmp/home/project"
  out=$(env -i PATH=/usr/bin:/bin HOME="$tmp/home" "$root/usr/bin/pw" -v new demo \
        --dir "$tmp/home/project" --shell /bin/sh 2>&1) ||
    fail "unpacked pw new: $out"
  grep -qF "templates from $root/usr/share/pw/profiles" <<<"$out" ||
    fail "unpacked pw new did not use the unpacked templates: $out"
  out=$(env -i PATH=/usr/bin:/bin HOME="$tmp/home" "$root/usr/bin/pw" show demo-llm 2>&1) ||
    fail "unpacked pw show demo-llm: $out"
  # The installed pw passes its own health check (as the user who will run it: the test
  # user when this runs as root), with the profiles it just wrote.
  as_user=()
  if [ "$(id -u)" = 0 ] && id "${PW_TEST_USER:-pwtest}" >/dev/null 2>&1; then
    chown -R "${PW_TEST_USER:-pwtest}" "$tmp/home"
    chmod 755 "$tmp"
    as_user=(runuser -u "${PW_TEST_USER:-pwtest}" --)
  fi
  out=$("${as_user[@]}" env -i PATH=/usr/bin:/bin HOME="$tmp/home" "$root/usr/bin/pw" doctor 2>&1) ||
    fail "unpacked pw doctor: $out"
  grep -q '^pw can work here' <<<"$out" || fail "unpacked pw doctor: $out"
  for page in man1/pw.1.gz man5/pw-profile.5.gz; do
    MANWIDTH=80 MANPAGER=cat man -l "$root/usr/share/man/$page" >/dev/null 2>"$tmp/man.err" &&
      [ ! -s "$tmp/man.err" ] || fail "man -l $page: $(cat "$tmp/man.err")"
  done
  cmp -s "$root/usr/share/bash-completion/completions/pw" "$src/completions/pw.bash" ||
    fail "the packaged bash completion differs from completions/pw.bash"
  cmp -s "$root/usr/share/zsh/vendor-completions/_pw" "$src/completions/_pw" ||
    fail "the packaged zsh completion differs from completions/_pw"
  cmp -s "$root/usr/share/fish/vendor_completions.d/pw.fish" "$src/completions/pw.fish" ||
    fail "the packaged fish completion differs from completions/pw.fish"
fi

if [ "$failures" -gt 0 ]; then
  echo "$failures package check(s) failed" >&2
  exit 1
fi
echo "package checks passed"
