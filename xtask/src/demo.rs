//! `cargo xtask demo`: placeholder until the fetcher lands.
use anyhow::Result;
pub fn run(_args: &[String]) -> Result<()> {
    anyhow::bail!("demo not yet written")
}
