//! `logkeeper completions SHELL`: print a completion script (clap_complete).
//!
//! Bash also completes store names (C.17 of issue 16): clap's script knows
//! only the static grammar, so a wrapper asks `logkeeper store list` (with
//! the `--config` typed on the line, if any) where a store name goes.

use clap::CommandFactory;
use clap_complete::Shell;

use crate::cli::Cli;
use crate::cli::exit;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(value_parser = ["bash", "zsh", "fish"])]
    pub shell: String,
}

/// Bash: complete store names after the commands that take them, else
/// defer to clap's `_logkeeper`. Registered after clap's `complete` line,
/// so it replaces it.
const BASH_STORES: &str = r#"
__logkeeper_store_names() {
    local i args=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        case "${COMP_WORDS[i]}" in
            --config) args+=(--config "${COMP_WORDS[i+1]}") ;;
            --config=*) args+=("${COMP_WORDS[i]}") ;;
        esac
    done
    "${COMP_WORDS[0]}" "${args[@]}" store list 2>/dev/null | cut -f1
}

_logkeeper_with_stores() {
    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
    local words=" ${COMP_WORDS[*]:1:COMP_CWORD-1} "
    case "$prev" in
        --config|--state-dir|--metrics-file|--trigger|--log|--segments) ;;
        *)
            if [[ "$cur" != -* ]]; then
                case "$words" in
                    *" sync now "*|*" status "*|*" replay "*|*" append "*|*" store remove "*)
                        COMPREPLY=($(compgen -W "$(__logkeeper_store_names)" -- "$cur"))
                        [[ ${#COMPREPLY[@]} -gt 0 ]] && return 0
                        ;;
                esac
            fi
            ;;
    esac
    _logkeeper "$@"
}
complete -F _logkeeper_with_stores -o bashdefault -o default logkeeper
"#;

pub fn run(args: &Args) -> anyhow::Result<u8> {
    let shell = match args.shell.as_str() {
        "bash" => Shell::Bash,
        "zsh" => Shell::Zsh,
        _ => Shell::Fish,
    };
    // Into memory first: `generate` panics on a failed write (B.10).
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "logkeeper", &mut script);
    if shell == Shell::Bash {
        script.extend_from_slice(BASH_STORES.as_bytes());
    }
    std::io::Write::write_all(&mut std::io::stdout(), &script)?;
    Ok(exit::OK)
}
