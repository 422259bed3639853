//! `azsync agent --stdio`: the receiving side, on stdin and stdout.

use std::process::ExitCode;

use crate::cli::AgentArgs;

pub fn run(_args: AgentArgs) -> anyhow::Result<ExitCode> {
    // Errors travel to the sender as a Fatal message; printing them here too would show the
    // user every failure twice.
    match sync_core::serve(std::io::stdin().lock(), std::io::stdout()) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(_) => Ok(ExitCode::FAILURE),
    }
}
