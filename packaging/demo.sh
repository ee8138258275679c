#!/usr/bin/env bash
# pw's main job on a demo project, in a scratch home so nothing of yours is touched:
# a home with credentials in it, a project, its two profiles, and a look from inside the
# agent posture. Exits non-zero if the sandbox does not hold.
set -euo pipefail
pw="${1:-pw}"
pw="$(command -v "$pw" || echo "$pw")"
src="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export PW_TEMPLATE_DIR="${PW_TEMPLATE_DIR:-$src/profiles}"

demo="$(mktemp -d /tmp/pw-demo.XXXXXX)"
trap 'rm -rf "$demo"' EXIT
export HOME="$demo/home" XDG_CONFIG_HOME="$demo/home/.config" XDG_DATA_HOME="$demo/home/.local/share"
unset XDG_RUNTIME_DIR
mkdir -p "$HOME/.ssh" "$HOME/.aws" "$HOME/projects/demo" "$HOME/projects/other"
echo "-----BEGIN OPENSSH PRIVATE KEY----- (demo key)" > "$HOME/.ssh/id_ed25519"
printf '[default]\naws_secret_access_key = DEMO-SECRET\n' > "$HOME/.aws/credentials"
echo "DATABASE_URL=postgres://other-project" > "$HOME/projects/other/.env"
echo "print('hello from the demo project')" > "$HOME/projects/demo/app.py"
chmod 600 "$HOME/.ssh/id_ed25519" "$HOME/.aws/credentials"

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
say "\$ pw new demo --dir ~/projects/demo"
"$pw" new demo --dir "$HOME/projects/demo" --shell /bin/sh

say "\$ pw explain demo-llm ~/.ssh/id_ed25519"
"$pw" explain demo-llm "$HOME/.ssh/id_ed25519"

say "\$ pw demo-llm -- sh -c '...'   # the agent posture, looking around"
"$pw" demo-llm -- /bin/sh -c '
  fail=0
  echo "running as $(id -un) in $(pwd), hostname $(hostname)"
  for f in ~/.ssh/id_ed25519 ~/.aws/credentials ~/projects/other/.env; do
    if cat "$f" >/dev/null 2>&1; then echo "  VISIBLE  $f"; fail=1; else echo "  hidden   $f"; fi
  done
  if echo "written from the agent posture" > agent-notes.txt; then
    echo "  project writable: wrote $(pwd)/agent-notes.txt"
  else fail=1; fi
  if touch /usr/pw-demo 2>/dev/null; then echo "  /usr WRITABLE"; fail=1; else echo "  /usr read-only"; fi
  echo "  environment: $(env | cut -d= -f1 | sort | tr "\n" " ")"
  exit $fail
'
test -f "$HOME/projects/demo/agent-notes.txt"
echo "  (and the host sees $HOME/projects/demo/agent-notes.txt)"

say "\$ pw demo -- sh -c '...'   # the human posture: your home, minus cloud credentials and other projects"
"$pw" demo -- /bin/sh -c '
  for f in ~/.ssh/id_ed25519 ~/.aws/credentials ~/projects/other/.env; do
    if cat "$f" >/dev/null 2>&1; then echo "  readable $f"; else echo "  hidden   $f"; fi
  done
'
say "\$ pw vault init demo   # the project's encrypted vault (the passphrase comes from a file here; normally pw asks on the terminal)"
printf 'demo vault passphrase\n' > "$HOME/.demo-passphrase"
chmod 600 "$HOME/.demo-passphrase"
"$pw" vault init demo --passphrase-file "$HOME/.demo-passphrase"

say "\$ pw demo   # a human session unlocks the vault and keeps a secret in it"
"$pw" demo -- /bin/sh -c '
  "$0" vault unlock --passphrase-file "$1" || exit 1
  echo "API_KEY=demo-123" > .vault/api.env
  echo "  inside the human session: .vault/api.env = $(cat .vault/api.env)"
  touch "$2/unlocked"
  while [ ! -e "$2/stop" ]; do sleep 0.1; done
' "$pw" "$HOME/.demo-passphrase" "$HOME/projects/demo" &
session=$!
for _ in $(seq 100); do [ -e "$HOME/projects/demo/unlocked" ] && break; sleep 0.1; done
[ -e "$HOME/projects/demo/unlocked" ] || { touch "$HOME/projects/demo/stop"; wait; exit 1; }
"$pw" ps | sed 's/^/  /'
fail=0
if [ -n "$(ls -A "$HOME/projects/demo/.vault")" ]; then echo "  host: plaintext VISIBLE"; fail=1
else echo "  host: $HOME/projects/demo/.vault is empty"; fi
if "$pw" demo-llm -- cat "$HOME/projects/demo/.vault/api.env" >/dev/null 2>&1; then
  echo "  agent posture: plaintext VISIBLE"; fail=1
else echo "  agent posture: .vault/api.env not there"; fi
echo "  on disk, encrypted: $(ls "$HOME/.local/share/pw/vaults/demo" | head -3 | tr '\n' ' ')"
touch "$HOME/projects/demo/stop"
wait "$session"
[ "$fail" -eq 0 ]
echo "  last session gone: vault locked, key wiped ($("$pw" ps))"

say "demo done: the agent saw none of the credentials and wrote only into the project; the vault's plaintext existed only inside the human session."
