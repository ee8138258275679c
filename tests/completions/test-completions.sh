#!/usr/bin/env bash
# Loads pw's completions in their real shells and checks what they offer:
#   bash: through bash-completion's own on-demand loader (as installed), then the function
#         `complete -p pw` names, called with COMP_WORDS/COMP_CWORD/COMP_LINE/COMP_POINT;
#   zsh:  compinit autoloads _pw from the dir; a real TAB on a pseudo-terminal (zpty);
#   fish: `complete -C` with the dir on fish_complete_path.
# Against the CLI itself: every subcommand of `pw --help` is offered after `pw `, and every
# option of `pw SUB --help` after `pw SUB --`.
# usage: test-completions.sh PW_BINARY COMPLETIONS_DIR
set -uo pipefail

pw_bin=$(realpath "$1")
comp_dir=$(realpath "$2")
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
presets=()
for t in "$here"/../../profiles/agent-*.toml; do
  t=${t##*/agent-}
  presets+=("${t%.toml}")
done
[ "$(basename "$pw_bin")" = pw ] || { echo "the binary must be named pw: $pw_bin" >&2; exit 2; }

missing=()
for sh in zsh fish; do command -v "$sh" >/dev/null || missing+=("$sh"); done
[ -r /usr/share/bash-completion/bash_completion ] || missing+=(bash-completion)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]} (packaging/install-deps.sh installs them)" >&2
  [ "${PW_MUST_WORK:-0}" = 1 ] && exit 1
  exit 77
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/home" "$tmp/project" "$tmp/bash/completions"
# bash-completion's loader looks for completions/CMD under BASH_COMPLETION_USER_DIR.
ln -s "$comp_dir/pw.bash" "$tmp/bash/completions/pw"

export HOME=$tmp/home XDG_CONFIG_HOME=$tmp/config XDG_DATA_HOME=$tmp/data
export BASH_COMPLETION_USER_DIR=$tmp/bash
export PATH="$(dirname "$pw_bin"):$PATH"
unset XDG_RUNTIME_DIR
for name in okb okb-llm; do
  mkdir -p "$XDG_CONFIG_HOME/pw/$name"
  printf '[project]\ndir = "%s"\n' "$tmp/project" >"$XDG_CONFIG_HOME/pw/$name/profile.toml"
done
# Not profiles: no profile.toml, or not a valid profile name.
mkdir -p "$XDG_CONFIG_HOME/pw/leftover" "$XDG_CONFIG_HOME/pw/.okhidden"
printf '[project]\n' >"$XDG_CONFIG_HOME/pw/.okhidden/profile.toml"

complete_bash() {
  bash --norc --noprofile -c '
    source /usr/share/bash-completion/bash_completion
    __load_completion pw || { echo "bash: no completion for pw was loaded" >&2; exit 3; }
    spec=$(complete -p pw) || exit 3
    func=$(sed -n "s/.*-F \([^ ]*\) .*/\1/p" <<<"$spec")
    [ -n "$func" ] || { echo "bash: complete -p pw: $spec" >&2; exit 3; }
    line=$1
    read -ra COMP_WORDS <<<"$line"
    [[ $line == *" " ]] && COMP_WORDS+=("")
    COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
    COMP_LINE=$line
    COMP_POINT=${#line}
    COMPREPLY=()
    # Like bash itself, ignore the function'"'"'s status (124 would mean "retry": none here).
    "$func" pw "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    printf "%s\n" "${COMPREPLY[@]}"
  ' bash "$1"
}

complete_zsh() {
  timeout 30 zsh -f "$here/zsh-complete.zsh" "$comp_dir" "$1" "$tmp/zcompdump"
}

complete_fish() {
  # Only the candidate, not its description.
  timeout 30 fish --no-config -c 'set -p fish_complete_path $argv[1]; complete -C $argv[2]' \
    "$comp_dir" "$1" | cut -f1
}

failures=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}

# got= the candidates (sorted, unique) of LINE in SHELL; a completion that errors out fails.
# (No command substitution around it: fail() must count in this shell.)
candidates() {
  local shell=$1 line=$2
  got=
  if ! "complete_$shell" "$line" >"$tmp/stdout" 2>"$tmp/stderr"; then
    fail "$shell: completing '$line' failed: $(cat "$tmp/stderr")"
    return 1
  fi
  # bash-completion's compopt complains outside a real completion; anything else is a bug.
  if grep -v 'compopt: not currently executing completion function' "$tmp/stderr" | grep -q .; then
    fail "$shell: completing '$line' printed errors: $(cat "$tmp/stderr")"
  fi
  got=$(sed '/^$/d' "$tmp/stdout" | sort -u)
}

expect_exactly() {  # shell line want...
  local shell=$1 line=$2
  shift 2
  local want
  candidates "$shell" "$line" || return
  want=$(printf '%s\n' "$@" | sed '/^$/d' | sort -u)
  [ "$got" = "$want" ] ||
    fail "$shell: '$line' offers [$(echo $got)], expected exactly [$(echo $want)]"
}

expect_includes() {  # shell line want...
  local shell=$1 line=$2
  shift 2
  local w
  candidates "$shell" "$line" || return
  for w in "$@"; do
    grep -qxF -- "$w" <<<"$got" || fail "$shell: '$line' does not offer '$w' (offers: $(echo $got))"
  done
}

expect_excludes() {  # shell line unwanted...
  local shell=$1 line=$2
  shift 2
  local w
  candidates "$shell" "$line" || return
  for w in "$@"; do
    if grep -qxF -- "$w" <<<"$got"; then fail "$shell: '$line' offers '$w', which it must not"; fi
  done
}

# What the CLI itself accepts, from its help.
subcommands() {  # the "Subcommands:" section of `pw [SUB] --help`
  "$pw_bin" "$@" --help | sed -n '/^Subcommands:/,/^$/s/^  \([a-z][a-z-]*\) .*/\1/p'
}
long_options() {  # every --option of `pw SUB... --help`
  "$pw_bin" "$@" --help | sed -n '/^Options:/,/^$/p' | grep -oE '^ +(-[a-zA-Z],)?--[a-z][a-z-]*' |
    sed 's/.*--/--/'
}

top=$(subcommands)
vault_actions=$(subcommands vault)
[ -n "$top" ] && [ -n "$vault_actions" ] || { echo "cannot read pw --help" >&2; exit 1; }
# Being added alongside: offered already, so the completions need no change when they land.
extra="doctor check"

for shell in bash zsh fish; do
  echo "== $shell"
  # pw <TAB>: every command and every profile, nothing that is not a profile.
  expect_includes "$shell" "pw " $top $extra okb okb-llm
  expect_excludes "$shell" "pw " leftover .okhidden
  # pw vault <TAB>: its actions, only.
  expect_exactly "$shell" "pw vault " $vault_actions
  # pw ok<TAB>: the two profiles.
  expect_exactly "$shell" "pw ok" okb okb-llm
  expect_exactly "$shell" "pw show okb-" okb-llm
  expect_exactly "$shell" "pw vault unlock o" okb okb-llm
  # The presets are the agent templates shipped in profiles/.
  expect_exactly "$shell" "pw new x --agent " "${presets[@]}"
  expect_includes "$shell" "pw okb -" --
  expect_includes "$shell" "pw -" --verbose --quiet --help --version
  # Every option the CLI has, where the CLI has it.
  for sub in $top; do
    [ "$sub" = vault ] && continue
    expect_includes "$shell" "pw $sub --" $(long_options "$sub")
  done
  for action in $vault_actions; do
    expect_includes "$shell" "pw vault $action --" $(long_options vault "$action")
  done
done

# No profiles at all (no config dir): commands still complete, quietly.
export XDG_CONFIG_HOME=$tmp/nothing-here
for shell in bash zsh fish; do
  echo "== $shell, no profiles"
  expect_includes "$shell" "pw " $top
  expect_exactly "$shell" "pw ok"
  expect_exactly "$shell" "pw show "
done

if [ "$failures" -gt 0 ]; then
  echo "$failures completion check(s) failed" >&2
  exit 1
fi
echo "all completion checks passed"
