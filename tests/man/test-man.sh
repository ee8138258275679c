#!/usr/bin/env bash
# The man pages: they format without a single groff or man warning, pw(1) documents every
# command and option `pw --help` lists, pw-profile(5) every section and key the loader
# accepts (`pw __keys`, read from the loader's own table), and its example profiles load.
# usage: test-man.sh PW_BINARY MAN_DIR
set -uo pipefail

pw_bin=$(realpath "$1")
man_dir=$(realpath "$2")
for tool in groff man col; do
  if ! command -v "$tool" >/dev/null; then
    echo "missing: $tool (packaging/install-deps.sh installs groff-base, man-db, bsdextrautils)" >&2
    [ "${PW_MUST_WORK:-0}" = 1 ] && exit 1
    exit 77
  fi
done

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# 1. Formatting: groff with every warning on, and man-db's own pipeline (preconv, tbl...).
for page in "$man_dir/pw.1" "$man_dir/pw-profile.5"; do
  [ -r "$page" ] || { fail "no $page"; continue; }
  if ! groff -man -Tutf8 -ww -z "$page" 2>"$tmp/groff.err" || [ -s "$tmp/groff.err" ]; then
    fail "groff warns about $(basename "$page"): $(cat "$tmp/groff.err")"
  fi
  if ! MANWIDTH=80 MANPAGER=cat man --warnings -l "$page" >"$tmp/man.out" 2>"$tmp/man.err" ||
     [ -s "$tmp/man.err" ]; then
    fail "man -l $(basename "$page"): $(cat "$tmp/man.err")"
  fi
  [ -s "$tmp/man.out" ] || fail "man -l $(basename "$page") printed nothing"
done

# Plain text of a page, as a reader sees it (no overstriking, ASCII hyphens).
render() { groff -man -Tascii -P-c -rLL=100n "$1" 2>/dev/null | col -bx; }
render "$man_dir/pw.1" >"$tmp/pw.1.txt"
render "$man_dir/pw-profile.5" >"$tmp/pw-profile.5.txt"

# 2. pw(1) against the CLI.
subcommands() { "$pw_bin" "$@" --help | sed -n '/^Subcommands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p'; }
long_options() {
  "$pw_bin" "$@" --help | sed -n '/^Options:/,/^$/p' | grep -oE '^ +(-[a-zA-Z],)?--[a-z][a-z-]*' |
    sed 's/.*--/--/'
}
# Entries count in the body (COMMANDS and OPTIONS), not in the SYNOPSIS: a tag line
# starting "pw SUB", and a tag line for each option.
sed -n '/^COMMANDS$/,/^EXIT STATUS$/p' "$tmp/pw.1.txt" >"$tmp/pw.1.body"
has_option() { grep -qE -- "^ +(-[a-zA-Z], )?$1( |,|$)" "$tmp/pw.1.body"; }
top=$(subcommands)
[ -n "$top" ] || { echo "cannot read pw --help" >&2; exit 1; }
for sub in $top; do
  grep -qE "^ +pw $sub( |$)" "$tmp/pw.1.body" || fail "pw(1) has no entry for 'pw $sub'"
  for opt in $(long_options "$sub"); do
    has_option "$opt" || fail "pw(1) has no entry for $opt (pw $sub)"
  done
done
for action in $(subcommands vault); do
  grep -qE "^ +pw vault $action( |$)" "$tmp/pw.1.body" ||
    fail "pw(1) has no entry for 'pw vault $action'"
  for opt in $(long_options vault "$action"); do
    has_option "$opt" || fail "pw(1) has no entry for $opt (pw vault $action)"
  done
done
for opt in $(long_options); do
  has_option "$opt" || fail "pw(1) has no entry for $opt"
done

# 3. pw-profile(5) against the loader: each section a subsection "[name]", each key an entry
# (a tag line) inside its own section's subsection.
keys=$("$pw_bin" __keys)
[ -n "$keys" ] || { echo "pw __keys printed nothing" >&2; exit 1; }
section_text() {  # the lines of subsection [NAME], up to the next (sub)section heading
  awk -v h="   [$1]" '
    $0 == h { on = 1; next }
    on && /^([^ ]|   [^ ])/ { exit }
    on { print }' "$tmp/pw-profile.5.txt"
}
nkeys=0
for k in $keys; do
  case $k in
    *.*)
      sec=${k%%.*} key=${k#*.}
      nkeys=$((nkeys + 1))
      section_text "$sec" | grep -qE "^ {7}$key( |$)" ||
        fail "pw-profile(5) has no entry for '$key' under [$sec]"
      ;;
    *)
      grep -qxF "   [$k]" "$tmp/pw-profile.5.txt" || fail "pw-profile(5) has no subsection [$k]"
      ;;
  esac
done
[ "$nkeys" -ge 20 ] || fail "pw __keys listed only $nkeys keys"

# 4. The example profiles in pw-profile(5) are valid: pw loads each one.
home=$tmp/home
mkdir -p "$home/projects/okb"
mkdir -p "$tmp/examples"
awk -v dir="$tmp/examples" '
  /^\.EX$/ { n++; f = dir "/" n ".toml"; on = 1; next }
  /^\.EE$/ { on = 0; next }
  on { gsub(/\\-/, "-"); gsub(/\\\(aq/, "\047"); print > f }' "$man_dir/pw-profile.5"
loaded=0
for ex in "$tmp"/examples/*.toml; do
  head -1 "$ex" | grep -qxF '[project]' || continue # a fragment, not a whole profile
  name=example$loaded
  mkdir -p "$tmp/config/pw/$name"
  cp "$ex" "$tmp/config/pw/$name/profile.toml"
  if ! HOME=$home XDG_CONFIG_HOME=$tmp/config "$pw_bin" show "$name" >/dev/null 2>"$tmp/show.err"; then
    fail "the example profile in pw-profile(5) does not load: $(cat "$tmp/show.err")"$'\n'"$(cat "$ex")"
  fi
  loaded=$((loaded + 1))
done
[ "$loaded" -ge 2 ] || fail "found $loaded example profiles in pw-profile(5), expected 2"

if [ "$failures" -gt 0 ]; then
  echo "$failures man page check(s) failed" >&2
  exit 1
fi
echo "man pages: formatted without warnings; $(echo $top | wc -w) commands, $nkeys keys and $loaded examples checked"
