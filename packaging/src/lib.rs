//! Man pages (clap_mangen) and shell completions (clap_complete) generated from the same clap
//! definitions the binaries parse with, so `--help`, the man page and the completions never
//! disagree. `ktbroker-gen-assets OUTDIR` writes them for the packages.
#![forbid(unsafe_code)]

pub mod pages;

use clap::CommandFactory;
use clap_complete::Shell;
use std::path::{Path, PathBuf};

/// Each program with its man section and the hand-written sections of its page.
pub fn programs() -> Vec<(clap::Command, &'static str, &'static [pages::Section])> {
    vec![
        (
            ktbroker_broker::cli::Args::command().name("ktbrokerd"),
            "8",
            pages::KTBROKERD,
        ),
        (ktbroker_kinit::cli::Cli::command().name("ktbroker-kinit"), "1", &[]),
        (ktbroker_netdisk::cli::Cli::command().name("netdisk"), "1", &[]),
    ]
}

/// Writes `OUT/man/NAME.SECTION` and `OUT/completions/{bash,zsh,fish}/...` for every program;
/// returns the files written.
pub fn generate(out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let man_dir = out.join("man");
    std::fs::create_dir_all(&man_dir)?;
    for (command, section, extra) in programs() {
        let name = command.get_name().to_owned();
        written.extend(pages::write_pages(&command, section, extra, &man_dir)?);
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let dir = out.join("completions").join(shell.to_string());
            std::fs::create_dir_all(&dir)?;
            let mut command = command.clone();
            written.push(clap_complete::generate_to(shell, &mut command, &name, &dir)?);
        }
    }
    Ok(written)
}
