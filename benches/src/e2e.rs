//! The end-to-end benchmark as a program of its own (`azsync bench` runs the same harness):
//!
//! ```text
//! cargo build --release -p sync-cli -p azsync-benches
//! target/release/e2e                      # local: 50,000 files, 3 runs, on /dev/shm
//! target/release/e2e --ssh                # over a loopback sshd
//! target/release/e2e --wan --files 10000  # through a simulated 40 ms, 100 Mbit/s WAN
//! target/release/e2e --quick --ssh        # smoke check: 2,000 files, 1 run
//! target/release/e2e --help               # every option
//! ```
//!
//! What it measures and how is described in the library's documentation (`src/lib.rs`). The
//! report goes to stdout (and to `--out FILE`), progress to stderr. Exit code 0; 1 on an error,
//! or if a run failed or a destination differed from the source (the report is still printed);
//! 2 on a usage error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

/// azsync against rsync (and cp -a) on a generated home-like tree.
#[derive(Debug, Parser)]
#[command(name = "e2e", version)]
struct Cli {
    /// The azsync binary [default: target/release/azsync, also looked for in
    /// $CARGO_TARGET_DIR/release and this workspace's target/release]
    #[arg(long, value_name = "PATH")]
    azsync: Option<PathBuf>,

    #[command(flatten)]
    bench: azsync_benches::BenchArgs,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = azsync_benches::find_azsync(cli.azsync.as_deref())
        .and_then(|azsync| azsync_benches::run(cli.bench, azsync));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("e2e: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
