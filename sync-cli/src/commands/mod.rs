//! The commands. Each takes its parsed arguments and returns the exit code.

mod agent;
mod sync;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sync(args) => sync::run(*args),
        Command::Agent(args) => agent::run(args),
    }
}
