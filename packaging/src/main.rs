//! `ktbroker-gen-assets OUTDIR`: man pages and shell completions for the packages.
#![forbid(unsafe_code)]

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let out = std::env::args_os()
        .nth(1)
        .context("usage: ktbroker-gen-assets OUTDIR")?;
    for path in ktbroker_packaging::generate(std::path::Path::new(&out))? {
        println!("{}", path.display());
    }
    Ok(())
}
