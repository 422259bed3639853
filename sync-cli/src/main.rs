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
    limit_malloc_arenas();
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

/// glibc gives each thread that allocates its own arena (up to 8 per core), and memory freed in
/// one is not reused by another; with the walker, the answering thread, the SSH runtime and
/// rayon each allocating file-sized buffers, that alone costs megabytes of peak RSS. Two arenas
/// keep the threads from contending on one lock without that spread. (What `MALLOC_ARENA_MAX=2`
/// does; an explicit setting in the environment wins.)
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only sets a tunable; called before any other thread exists.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
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
