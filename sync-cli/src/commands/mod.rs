//! The commands. Each takes its parsed arguments and returns the exit code.

mod agent;
mod config;
mod push;
mod storage;
mod sync;
mod vm;

use std::process::ExitCode;

use crate::cli::{Cli, Command};

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Sync(args) => sync::run(*args),
        Command::Agent(args) => agent::run(args),
        Command::Push(args) => push::run(*args),
        Command::Vm(args) => vm::run(*args),
        Command::Storage(args) => storage::run(*args),
        Command::Config(args) => config::run(args),
        Command::Bench(args) => {
            let exe = std::env::current_exe()
                .map_err(|e| anyhow::anyhow!("cannot find this executable: {e}"))?;
            azsync_benches::run(*args, exe)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
