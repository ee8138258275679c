# bash completion for pw(1)                                        -*- shell-script -*-
# Installed as share/bash-completion/completions/pw (bash-completion loads it on demand).
# Profile names come from `pw list --names`, the same pw being completed, so they follow
# $XDG_CONFIG_HOME and pw's own rules for what counts as a profile.

_pw_profiles()
{
    local pw=$1
    COMPREPLY+=($(compgen -W "$("$pw" list --names 2>/dev/null)" -- "$cur"))
}

_pw()
{
    local cur prev words cword split
    _init_completion -s || return

    local pw=${words[0]}
    __expand_tilde_by_ref pw # ~/bin/pw: the profiles come from this very pw
    local global='-v --verbose -q --quiet -h --help'
    local commands='new list show explain edit ps log vault doctor check import-pwrap'

    # Walk the words before the cursor: the command (or the profile, for `pw NAME`), the
    # vault action, and how many positional arguments the command already has.
    local i w cmd='' action='' nargs=0
    for ((i = 1; i < cword; i++)); do
        w=${words[i]}
        case $w in
            --)
                # `pw NAME -- CMD ARGS`: complete the command line that follows.
                if [[ $cmd == @profile ]]; then
                    _command_offset $((i + 1))
                    return
                fi
                continue
                ;;
            --dir | --shell | --agent | --passphrase-fd | --passphrase-file | \
                --new-passphrase-fd | --new-passphrase-file | --kdf-ops | --kdf-mem-mib | --from)
                ((i++)) # its value
                continue
                ;;
            -*) continue ;;
        esac
        if [[ -z $cmd ]]; then
            case " $commands " in
                *" $w "*) cmd=$w ;;
                *) cmd=@profile ;;
            esac
        elif [[ $cmd == vault && -z $action ]]; then
            action=$w
        else
            ((nargs++))
        fi
    done

    case $prev in
        --dir | --from)
            _filedir -d
            return
            ;;
        --shell)
            COMPREPLY=($(compgen -W "$(grep -s '^/' /etc/shells)" -- "$cur"))
            return
            ;;
        --agent)
            COMPREPLY=($(compgen -W 'claude codex opencode aider generic' -- "$cur"))
            return
            ;;
        --passphrase-file | --new-passphrase-file)
            _filedir
            return
            ;;
        --passphrase-fd | --new-passphrase-fd | --kdf-ops | --kdf-mem-mib)
            return # a number
            ;;
    esac
    $split && return

    local opts=$global
    case $cmd in
        '')
            if [[ $cur == -* ]]; then
                COMPREPLY=($(compgen -W "$global --version" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "$commands" -- "$cur"))
                _pw_profiles "$pw"
            fi
            return
            ;;
        @profile)
            # after `pw NAME`: only `--` and a command may follow
            [[ $cur == -* ]] && COMPREPLY=($(compgen -W "-- $global" -- "$cur"))
            return
            ;;
        new) opts+=' --dir --shell --agent' ;;
        list) opts+=' --names' ;;
        import-pwrap)
            opts+=' --dry-run'
            ((nargs == 0)) && [[ $cur != -* ]] && _filedir -d
            ;;
        show | log | edit | check)
            ((nargs == 0)) && [[ $cur != -* ]] && _pw_profiles "$pw"
            ;;
        explain)
            if [[ $cur != -* ]]; then
                if ((nargs == 0)); then
                    _pw_profiles "$pw"
                elif ((nargs == 1)); then
                    _filedir
                fi
            fi
            ;;
        vault)
            if [[ -z $action ]]; then
                if [[ $cur == -* ]]; then
                    COMPREPLY=($(compgen -W "$global" -- "$cur"))
                else
                    COMPREPLY=($(compgen -W 'init unlock lock status passwd migrate' -- "$cur"))
                fi
                return
            fi
            case $action in
                init) opts+=' --passphrase-fd --passphrase-file --kdf-ops --kdf-mem-mib' ;;
                unlock) opts+=' --passphrase-fd --passphrase-file' ;;
                migrate) opts+=' --from --passphrase-fd --passphrase-file' ;;
                passwd) opts+=' --passphrase-fd --passphrase-file --new-passphrase-fd
                               --new-passphrase-file --kdf-ops --kdf-mem-mib' ;;
            esac
            ((nargs == 0)) && [[ $cur != -* ]] && _pw_profiles "$pw"
            ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    fi
} &&
    complete -F _pw pw

# ex: filetype=sh
