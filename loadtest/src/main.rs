//! `loadtest`: `loadtest origin`, a minimal keep-alive origin cheap enough never to be the
//! bottleneck of a proxy benchmark. The generator and `compare` runner are issue #3.

mod origin;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "loadtest", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve a fixed response to every request (keep-alive, pipelining).
    Origin(origin::Args),
}

fn main() -> anyhow::Result<()> {
    match Cli::parse().cmd {
        Cmd::Origin(a) => origin::run(a),
    }
}
