//! Writes a Stable-Diffusion-shaped repo for manual checks and benchmarks:
//! `cargo run -p pipefetch-hub-server --example sd_fixture -- ROOT ORG/NAME WEIGHT_BYTES`.

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [root, id, scale] = args.as_slice() else {
        return Err("usage: sd_fixture ROOT ORG/NAME WEIGHT_BYTES".into());
    };
    let start = Instant::now();
    let dir =
        pipefetch_hub_server::fixture::sd_like(std::path::Path::new(root), id, scale.parse()?)?;
    println!("wrote {} in {:.2?}", dir.display(), start.elapsed());
    Ok(())
}
