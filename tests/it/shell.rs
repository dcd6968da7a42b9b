//! Shell completions and the man page, through real bash and real man.

use std::process::{Command, Stdio};

use crate::common::*;

#[test]
fn bash_completion_of_st_offers_status_and_store() {
    need("bash", "bash");
    let script = format!(
        r#"source <('{BIN}' completions bash) || exit 9
fn=$(complete -p logkeeper | sed -E 's/.* -F ([^ ]+) .*/\1/')
COMP_WORDS=(logkeeper st); COMP_CWORD=1; COMP_LINE="logkeeper st"; COMP_POINT=${{#COMP_LINE}}
"$fn" logkeeper st logkeeper
printf '%s\n' "${{COMPREPLY[@]}}"
"#
    );
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", &script])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let mut offered: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    offered.sort();
    assert_eq!(offered, ["status", "store"]);
}

#[test]
fn zsh_and_fish_completions_name_the_subcommands() {
    let env = Env::new();
    for shell in ["zsh", "fish"] {
        env.lk(["completions", shell])
            .status(0)
            .stdout_has("sync")
            .stdout_has("schedule");
    }
    env.lk(["completions", "tcsh"]).status(2);
}

#[test]
fn man_page_renders_with_man() {
    need("man", "man-db");
    let env = Env::new();
    let page = env.lk(["man"]).status(0).stdout();
    assert!(
        page.starts_with(".ie") || page.contains(".TH logkeeper"),
        "{page}"
    );
    let mut man = Command::new("man")
        .args(["-l", "-P", "cat", "-"])
        .env("MANWIDTH", "80")
        .env("MAN_DISABLE_SECCOMP", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut man.stdin.take().unwrap(), page.as_bytes()).unwrap();
    let out = man.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    for section in ["NAME", "SYNOPSIS", "SUBCOMMANDS"] {
        assert!(text.contains(section), "no {section} in:\n{text}");
    }
    assert!(text.contains("logkeeper-sync"), "{text}");
}

#[test]
fn man_dir_writes_a_page_per_subcommand_that_man_renders() {
    need("man", "man-db");
    let env = Env::new();
    let dir = env.path("man1");
    env.lk(["man", "--dir"]).arg(&dir).status(0);
    for page in [
        "logkeeper.1",
        "logkeeper-sync.1",
        "logkeeper-sync-now.1",
        "logkeeper-daemon.1",
    ] {
        assert!(dir.join(page).is_file(), "no {page}");
    }
    let out = Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(dir.join("logkeeper-sync-now.1"))
        .env("MANWIDTH", "80")
        .env("MAN_DISABLE_SECCOMP", "1")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains("--metrics-file"),
        "{text}"
    );
}
