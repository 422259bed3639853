//! azsync's end-to-end benchmark: azsync against `rsync -a` (and `cp -a`, the floor of a first
//! sync) on a generated, home-like tree, locally, over a loopback OpenSSH server, or through a
//! simulated WAN. It backs both the `e2e` binary of this package and `azsync bench`.
//!
//! ```no_run
//! use clap::Parser;
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     bench: azsync_benches::BenchArgs,
//! }
//!
//! # fn main() -> anyhow::Result<()> {
//! let cli = Cli::parse();
//! azsync_benches::run(cli.bench, std::env::current_exe()?)?;
//! # Ok(()) }
//! ```
//!
//! What it does, in order:
//!
//! - generates a deterministic tree from `--seed` ([`tree`]): `--files` regular files (50,000 by
//!   default), mostly small text files (100 B – 8 KB, log-uniform), 3% binaries (16–256 KB), one
//!   1–20 MB file per 2,500 files (1 to 20 of them, the first exactly 20 MiB), about 20 files
//!   per directory nested up to 5 deep, a few relative symlinks and executable scripts, fixed
//!   mtimes in 2024; on a tmpfs (`/dev/shm`) unless `--dir`/`--disk` says otherwise;
//! - with `--ssh` or `--wan`, starts `/usr/sbin/sshd` on a free port of 127.0.0.1 (the shared
//!   test server of `tests/support`) and logs in as the current user; with `--wan`, puts the
//!   test-support [`Proxy`](azsync_test_support::Proxy) between the clients and sshd (delay
//!   each way, bandwidth cap), measures the link it makes, and turns compression on (azsync
//!   `--compress` when `azsync sync --help` lists it, rsync `-z`);
//! - runs each scenario `--runs` times per tool, alternating the tools: first sync (plus `cp
//!   -a` of the same tree, except on the WAN), no-op, `--checksum` no-op, 1% of files changed, one 20 MiB file
//!   edited in a few places, 1% of files deleted with `--delete`. Every run but a first sync
//!   starts from a fresh `cp -a` copy of the source as it was before the scenario's change;
//! - times every run by its own clock and GNU time's `ru_maxrss` (the local side; the remote
//!   side through an `--agent-path` wrapper or `--rsync-path`), reads the bytes on the wire
//!   (the tools' counts; the proxy's on a WAN), and checks each destination against the source;
//!   a run that outlives `--run-timeout` is killed with its process group and counted as failed;
//! - prints a Markdown report (and writes it to `--out`).

mod args;
mod bench;
mod report;
mod run;
mod sshd;
pub mod tree;
mod verify;
mod wan;

pub use args::{BenchArgs, ScenarioKind, VariantArg};
pub use bench::{find_azsync, run};
