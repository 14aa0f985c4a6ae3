//! `cargo xtask bench`: placeholder until the fetcher lands.
use anyhow::Result;
pub fn run(_args: &[String]) -> Result<()> {
    anyhow::bail!("bench not yet written")
}
