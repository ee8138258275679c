#!/usr/bin/zsh -f
# zsh-complete.zsh DIR LINE [DUMP]: what zsh's completion system offers for LINE (cursor at
# its end), one candidate per line, with _pw autoloaded from DIR by compinit as an installed
# completion would be. DUMP is compinit's dump file (as ~/.zcompdump is for a user): given,
# it makes every run after the first start fast. A real interactive zsh runs on a pseudo-terminal (zpty) and a real
# TAB is typed; a compadd wrapper records the candidates that survive matching and a
# comppostfuncs hook writes them out.
emulate -L zsh
zmodload zsh/zpty || { print -u2 "zsh-complete: no zsh/zpty"; exit 3 }
(( $# == 2 || $# == 3 )) || { print -u2 "usage: zsh-complete.zsh DIR LINE [DUMP]"; exit 2 }

local dir=${1:A} line=$2 dump=${3:-}
local dumpopt=-D
[[ -n $dump ]] && dumpopt="-d ${(q)dump}"
local work=$(mktemp -d) || exit 3
trap 'zpty -d pwc 2>/dev/null; rm -rf -- $work' EXIT

cat > $work/setup.zsh <<SETUP
PS1='' RPS1='' PS2=''
fpath=(${(q)dir} \$fpath)
autoload -Uz compinit && compinit -u $dumpopt
typeset -ga _pwc_matches
compadd() {
  # Calls that only collect (-O, -A) or describe (-D) add nothing: pass them through.
  if (( \${@[(I)-[OAD]]} )); then builtin compadd "\$@"; return; fi
  local -a got
  builtin compadd -O got "\$@"
  _pwc_matches+=("\${got[@]}")
  builtin compadd "\$@"
}
_pwc_dump() {
  print -rl -- "\${_pwc_matches[@]}" >| ${(q)work}/out.tmp && mv ${(q)work}/out.tmp ${(q)work}/out
}
comppostfuncs=(_pwc_dump)
bindkey '^I' complete-word
: >| ${(q)work}/ready
SETUP

wait_for() {  # file: up to 10 s
  local i
  for i in {1..200}; do
    [[ -e $1 ]] && return 0
    sleep 0.05
  done
  return 1
}

zpty -b pwc zsh -f -i || exit 3
zpty -w pwc "source ${(q)work}/setup.zsh"
wait_for $work/ready || { print -u2 "zsh-complete: the shell did not start"; exit 3 }
zpty -w -n pwc "$line"$'\t'
wait_for $work/out || { print -u2 "zsh-complete: no completion ran for '$line'"; exit 3 }
cat $work/out
