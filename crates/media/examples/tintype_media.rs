//! The `tintype probe` / `tintype render` commands as a stand-alone program:
//! it compiles the very module the `tintype` binary uses.
//!
//! cargo run --release -p tintype-media --example tintype_media -- render FILE --out DIR --fit 1600x1600

#[path = "../../tintype/src/media_cmd.rs"]
mod media_cmd;

use clap::Parser;

#[derive(Parser)]
#[command(name = "tintype")]
enum Cli {
    /// Print what tintype learns about a file.
    Probe(media_cmd::ProbeArgs),
    /// Make variants of a picture into a directory.
    Render(media_cmd::RenderArgs),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Probe(a) => media_cmd::run_probe(a),
        Cli::Render(a) => media_cmd::run_render(a),
    }
}
