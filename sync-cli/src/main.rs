//! `azsync`: the command-line face of `sync_core`.

mod azure;
mod cli;
mod commands;
mod config;
mod location;
mod output;

use std::process::ExitCode;

use clap::Parser;

/// Some files failed, the rest synced (rsync's code for a partial transfer).
pub const EXIT_PARTIAL: u8 = 23;
/// The command line is wrong.
pub const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    // clap exits with 2 on a usage error, as rsync does.
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("azsync: error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, leaving out a cause its parent already quotes.
fn one_line(err: &anyhow::Error) -> String {
    let mut line = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !line.contains(&cause) {
            line.push_str(": ");
            line.push_str(&cause);
        }
    }
    line
}
