//! Command-line definitions. Only parsing lives here; commands/ does the work.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Sync a directory tree to a local path or an Azure VM: rolling-checksum deltas checked with
/// blake3, pipelined batches with no file-count limit, and credentials never copied by accident.
#[derive(Debug, Parser)]
#[command(name = "azsync", version, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Copy the contents of SRC into DEST, sending only what changed.
    Sync(Box<SyncArgs>),
    /// Run the receiving side of a sync (started by azsync itself).
    Agent(AgentArgs),
}

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Source directory; its contents are synced (like `rsync -a SRC/ DEST/`).
    pub src: PathBuf,
    /// Destination directory (created if missing): a local path, `[user@]host:path` (relative
    /// paths are under the remote home) or `ssh://[user@]host[:port]/path`.
    pub dest: String,
    /// Delete destination files that the source does not have.
    #[arg(long)]
    pub delete: bool,
    /// Also delete excluded files from the destination (implies --delete).
    #[arg(long)]
    pub delete_excluded: bool,
    /// Exclude files matching PATTERN (gitignore syntax); repeatable.
    #[arg(long, value_name = "PATTERN")]
    pub exclude: Vec<String>,
    /// Read exclude patterns from FILE, one per line; repeatable.
    #[arg(long, value_name = "FILE")]
    pub exclude_from: Vec<PathBuf>,
    /// Copy files the built-in secret rules would skip (SSH keys, cloud credentials, .env ...).
    #[arg(long)]
    pub allow_secrets: bool,
    /// Compare files by blake3 checksum, not size and modification time.
    #[arg(short = 'c', long)]
    pub checksum: bool,
    /// Show what would change; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print one line per changed path, rsync style (`>f.st...... path`).
    #[arg(short = 'i', long)]
    pub itemize_changes: bool,
    /// Skip symlinks that point outside the source tree.
    #[arg(long)]
    pub safe_links: bool,
    /// Print one JSON summary object on stdout.
    #[arg(long)]
    pub json: bool,
    /// No progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub ssh: SshArgs,
}

/// How to reach a remote destination.
#[derive(Debug, Args)]
pub struct SshArgs {
    /// SSH port of the remote (overrides a port in an ssh:// destination).
    #[arg(short = 'p', long)]
    pub port: Option<u16>,
    /// Private key to try (after those in ssh-agent); repeatable.
    #[arg(long, value_name = "FILE")]
    pub key: Vec<PathBuf>,
    /// Use this ssh command (e.g. "ssh -J bastion") instead of the built-in SSH client.
    #[arg(long, short = 'e', value_name = "COMMAND")]
    pub rsh: Option<String>,
    /// Sync through SFTP only: no agent, no deltas (whole files; mtimes to the second).
    #[arg(long, conflicts_with_all = ["rsh", "agent_path"])]
    pub sftp: bool,
    /// Run the agent already installed at PATH on the remote instead of deploying one.
    #[arg(long, value_name = "PATH")]
    pub agent_path: Option<String>,
    /// known_hosts file to check host keys against (default ~/.ssh/known_hosts).
    #[arg(long, value_name = "FILE")]
    pub known_hosts: Option<PathBuf>,
    /// What to do with a host key not in known_hosts: refuse it, record it, or skip checking.
    #[arg(long, value_enum, default_value_t = HostKeyPolicy::AcceptNew)]
    pub host_key_policy: HostKeyPolicy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum HostKeyPolicy {
    /// Only hosts already in known_hosts.
    Strict,
    /// Record new hosts; refuse changed keys.
    AcceptNew,
    /// No checking at all (unsafe).
    Off,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    /// Speak the session protocol on stdin and stdout.
    #[arg(long, required = true)]
    pub stdio: bool,
}
