//! chance-gen-docs: renders the man pages and shell completions of chanced, chance-director and
//! chancectl from their clap definitions (`chance_control::daemon::Args`,
//! `chance_control::director::Args`, `chance_control::chancectl_cli::Cli`),
//! so that `--help`, the man pages and the completions cannot drift apart. The Debian package
//! (deploy/package/build-deb.sh) runs it at build time.
//!
//! `chance-gen-docs OUT_DIR` writes
//! - `OUT_DIR/man/chanced.8`, `OUT_DIR/man/chance-director.8`, `OUT_DIR/man/chancectl.1` and a
//!   page per chancectl subcommand
//!   (`chancectl-stats.1`, `chancectl-flows-list.1`, ...);
//! - `OUT_DIR/completions/{bash,zsh,fish}/` with each shell's file for both programs, named as
//!   the shells' completion directories expect (`chancectl`, `_chancectl`, `chancectl.fish`).
//!   (the daemons' pages and completions too).
#![forbid(unsafe_code)]

use anyhow::Context;
use chance_control::chancectl_cli::Cli;
use chance_control::daemon::Args;
use chance_control::director::Args as DirectorArgs;
use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: chance-gen-docs OUT_DIR");
        return ExitCode::from(2);
    };
    match generate(Path::new(&out)) {
        Ok(written) => {
            for path in written {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("chance-gen-docs: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Writes everything under `out`; the files written.
fn generate(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let man = out.join("man");
    std::fs::create_dir_all(&man).with_context(|| format!("creating {}", man.display()))?;
    let mut written = Vec::new();
    // The daemons are section 8, chancectl a user command (section 1).
    for (command, name) in [
        (Args::command(), "chanced"),
        (DirectorArgs::command(), "chance-director"),
    ] {
        let path = man.join(format!("{name}.8"));
        let mut page = Vec::new();
        clap_mangen::Man::new(command)
            .section("8")
            .render(&mut page)?;
        std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
        written.push(path);
    }
    written.extend(man_pages(Cli::command(), &man, "chancectl", "chancectl")?);

    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        let dir = out.join("completions").join(shell.to_string());
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        for (mut command, name) in [
            (Args::command(), "chanced"),
            (DirectorArgs::command(), "chance-director"),
            (Cli::command(), "chancectl"),
        ] {
            let mut path = clap_complete::generate_to(shell, &mut command, name, &dir)
                .with_context(|| format!("{shell} completions for {name}"))?;
            // bash-completion loads completions/NAME when NAME is first completed.
            if shell == Shell::Bash {
                let plain = dir.join(name);
                std::fs::rename(&path, &plain)
                    .with_context(|| format!("renaming {}", path.display()))?;
                path = plain;
            }
            written.push(path);
        }
    }
    Ok(written)
}

/// `command`'s page (section 1) as `NAME.1` and, recursively, one per subcommand
/// (`NAME-SUB.1`, its usage the full command line `NAME SUB`).
fn man_pages(
    command: clap::Command,
    dir: &Path,
    name: &str,
    usage: &str,
) -> anyhow::Result<Vec<PathBuf>> {
    let command = command
        .display_name(name.to_owned())
        .bin_name(usage.to_owned());
    let path = dir.join(format!("{name}.1"));
    let mut page = Vec::new();
    clap_mangen::Man::new(command.clone()).render(&mut page)?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    let mut written = vec![path];
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        let (sub_name, sub_usage) = (
            format!("{name}-{}", sub.get_name()),
            format!("{usage} {}", sub.get_name()),
        );
        written.extend(man_pages(sub.clone(), dir, &sub_name, &sub_usage)?);
    }
    Ok(written)
}
