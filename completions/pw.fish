# fish completion for pw(1). Installed as share/fish/vendor_completions.d/pw.fish.
# Profile names come from `pw list --names`, the same pw being completed, so they follow
# $XDG_CONFIG_HOME and pw's own rules for what counts as a profile.

# The positional words before the cursor (options and their values left out).
function __pw_positionals
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l skip 0
    for t in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        switch $t
            case --dir --shell --agent --passphrase-fd --passphrase-file --new-passphrase-fd \
                --new-passphrase-file --kdf-ops --kdf-mem-mib
                set skip 1
            case '-*'
            case '*'
                echo $t
        end
    end
end

function __pw_profiles
    set -l pw (commandline -opc)[1]
    $pw list --names 2>/dev/null
end

# True when the positional words so far are exactly $argv (e.g. `__pw_at vault`): the next
# word is the one after them.
function __pw_at
    set -l pos (__pw_positionals)
    test (count $pos) -eq (count $argv); or return 1
    for i in (seq (count $argv))
        test "$pos[$i]" = "$argv[$i]"; or return 1
    end
end

# True when the command (first positional word) is one of $argv.
function __pw_in
    set -l pos (__pw_positionals)
    set -q pos[1]; and contains -- $pos[1] $argv
end

function __pw_vault_in
    set -l pos (__pw_positionals)
    test "$pos[1]" = vault; and set -q pos[2]; and contains -- $pos[2] $argv
end

# `pw NAME -- ...`
function __pw_after_dashdash
    set -l tokens (commandline -opc)
    contains -- -- $tokens
end

function __pw_complete_after_dashdash
    set -l tokens (commandline -opc) (commandline -ct)
    set -l i (contains -i -- -- $tokens)
    __fish_complete_subcommand --commandline $tokens[(math $i + 1)..-1]
end

set -l commands new list show explain edit ps log vault doctor check import-pwrap

complete -c pw -f
complete -c pw -n 'not __pw_after_dashdash' -s v -l verbose -d 'show the mount plan and each setup step'
complete -c pw -n 'not __pw_after_dashdash' -s q -l quiet -d 'print only errors, warnings and what was asked for'
complete -c pw -n 'not __pw_after_dashdash' -s h -l help -d 'print help and exit'
complete -c pw -n '__pw_at' -l version -d 'print the version and exit'

# pw COMMAND | pw NAME
complete -c pw -n '__pw_at' -a new -d 'create profiles NAME (human) and NAME-llm (agent)'
complete -c pw -n '__pw_at' -a list -d 'list profiles'
complete -c pw -n '__pw_at' -a show -d 'print the resolved profile'
complete -c pw -n '__pw_at' -a explain -d 'print the mount plan, or why PATH is visible'
complete -c pw -n '__pw_at' -a edit -d 'edit a profile; saved only if it loads'
complete -c pw -n '__pw_at' -a ps -d 'list running workspaces and their sessions'
complete -c pw -n '__pw_at' -a log -d "the network decisions of a profile's sessions"
complete -c pw -n '__pw_at' -a vault -d "the project's encrypted vault (human posture)"
complete -c pw -n '__pw_at' -a doctor -d 'check that this machine can run pw'
complete -c pw -n '__pw_at' -a check -d 'test the walls of a profile from inside a real session'
complete -c pw -n '__pw_at' -a import-pwrap -d 'convert pwrap projects into pw profiles'
complete -c pw -n '__pw_at' -a '(__pw_profiles)' -d profile

# pw NAME -- CMD ARGS
complete -c pw -n "not __pw_in $commands; and not __pw_at; and not __pw_after_dashdash" -a '(printf "%s\n" --)' -d 'then the command to run'
complete -c pw -n '__pw_after_dashdash' -a '(__pw_complete_after_dashdash)'

# pw new NAME --dir DIR [--shell SHELL] [--agent PRESET]
complete -c pw -n '__pw_in new' -l dir -x -a '(__fish_complete_directories)' -d 'the project directory'
complete -c pw -n '__pw_in new' -l shell -x -a '(string match -r "^/.*" < /etc/shells)' -d 'shell for interactive sessions'
complete -c pw -n '__pw_in new' -l agent -x -a 'claude codex opencode aider generic' -d 'agent preset for NAME-llm'

complete -c pw -n '__pw_in list' -l names -d 'profile names only, one per line'

complete -c pw -n '__pw_in import-pwrap' -l dry-run -d 'print what would be written; write nothing'
complete -c pw -n '__pw_at import-pwrap' -x -a '(__fish_complete_directories)' -d "pwrap's config dir"

for c in show log edit check explain
    complete -c pw -n "__pw_at $c" -a '(__pw_profiles)' -d profile
end
complete -c pw -n '__pw_in explain; and test (count (__pw_positionals)) -eq 2' -F -d path

# pw vault ACTION [NAME]
complete -c pw -n '__pw_at vault' -a init -d 'create the vault of a profile'
complete -c pw -n '__pw_at vault' -a unlock -d "decrypt it into the running workspace's sessions"
complete -c pw -n '__pw_at vault' -a lock -d 'remove the plaintext from every session; wipe the key'
complete -c pw -n '__pw_at vault' -a status -d 'locked or unlocked, and which sessions see it'
complete -c pw -n '__pw_at vault' -a passwd -d 'change the passphrase (no re-encryption)'
complete -c pw -n '__pw_at vault' -a migrate -d 'copy a plaintext tree into the vault and verify it'
for a in init unlock lock status passwd migrate
    complete -c pw -n "__pw_at vault $a" -a '(__pw_profiles)' -d profile
end
complete -c pw -n '__pw_vault_in migrate' -l from -x -a '(__fish_complete_directories)' -d 'the plaintext tree to copy in'
complete -c pw -n '__pw_vault_in init unlock passwd migrate' -l passphrase-fd -x -d 'read the passphrase (one line) from this inherited fd'
complete -c pw -n '__pw_vault_in init unlock passwd migrate' -l passphrase-file -r -F -d 'read the passphrase (first line) from this file'
complete -c pw -n '__pw_vault_in passwd' -l new-passphrase-fd -x -d 'read the new passphrase (one line) from this inherited fd'
complete -c pw -n '__pw_vault_in passwd' -l new-passphrase-file -r -F -d 'read the new passphrase (first line) from this file'
complete -c pw -n '__pw_vault_in init passwd' -l kdf-ops -x -d 'Argon2id passes (default 3)'
complete -c pw -n '__pw_vault_in init passwd' -l kdf-mem-mib -x -d 'Argon2id memory in MiB (default 256)'
