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
    /// Sync the home profile (~/.azlin/home) to the home of one or more VMs.
    Push(Box<PushArgs>),
    /// Create, list, start, stop and delete dev VMs (through the az CLI).
    Vm(Box<VmArgs>),
    /// Azure Files NFS shares that hold a home shared by many VMs (through the az CLI).
    Storage(Box<StorageArgs>),
    /// Show or change the settings file (~/.azlin/config.toml).
    Config(ConfigArgs),
    /// Benchmark this azsync against rsync (and cp -a) on a generated home-like tree: locally,
    /// over a loopback sshd (--ssh) or a simulated WAN (--wan); prints a Markdown report.
    Bench(Box<azsync_benches::BenchArgs>),
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
    /// Compress with zstd what goes over the wire, where it pays (for slow links; already
    /// compressed files are detected and sent as they are).
    #[arg(short = 'z', long)]
    pub compress: bool,
    /// zstd level for --compress, 1 (fastest) to 19 (smallest); implies --compress.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(i32).range(1..=19))]
    pub compress_level: Option<i32>,
    /// Flush each file to disk before renaming it into place (slower; survives a power cut).
    #[arg(long)]
    pub fsync: bool,
    /// Show what would change; change nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,
    /// Print one line per changed path, rsync style (`>f.st...... path`).
    #[arg(short = 'i', long)]
    pub itemize_changes: bool,
    /// Skip symlinks that point outside the source tree.
    #[arg(long)]
    pub safe_links: bool,
    /// Skip files whose contents hold credentials (cloud keys, private keys, tokens) and links
    /// into ~/.ssh, ~/.aws, ~/.azure, ~/.config/gcloud; each is named on stderr.
    #[arg(long)]
    pub scan_secrets: bool,
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

/// Azure settings a flag can override; unset flags fall back to ~/.azlin/config.toml, then to
/// built-in defaults (see `config.rs`). Global within `vm`, `storage` and `push`.
#[derive(Debug, Clone, Default, Args)]
pub struct AzureFlags {
    /// Resource group (setting `default_resource_group`).
    #[arg(long, short = 'g', global = true, value_name = "NAME")]
    pub resource_group: Option<String>,
    /// Azure region for new resources (setting `default_region`).
    #[arg(long, global = true, value_name = "REGION")]
    pub region: Option<String>,
    /// Change nothing: `vm` and `storage` print each az command line instead of running it
    /// (none runs); `push` changes nothing on the VMs and says what it would.
    #[arg(long, short = 'n', global = true)]
    pub dry_run: bool,
    #[command(flatten)]
    pub ssh: VmSshFlags,
}

/// How azsync logs in to the VMs.
#[derive(Debug, Clone, Default, Args)]
pub struct VmSshFlags {
    /// Private key for the VMs; its `.pub` is what `vm create` installs (setting `ssh_key`,
    /// default ~/.ssh/azlin_key).
    #[arg(long, global = true, value_name = "FILE")]
    pub ssh_key: Option<PathBuf>,
    /// SSH port of the VMs (setting `ssh_port`, default 22; a VM tagged `azsync-ssh-port`
    /// uses its tag).
    #[arg(long, global = true, value_name = "PORT")]
    pub ssh_port: Option<u16>,
    /// User on the VMs, also the admin user `vm create` makes (setting `ssh_user`, default
    /// azureuser).
    #[arg(long, global = true, value_name = "USER")]
    pub ssh_user: Option<String>,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// VMs to push to, by name.
    #[arg(
        value_name = "VM",
        required_unless_present = "all",
        conflicts_with = "all"
    )]
    pub vms: Vec<String>,
    /// Push to every running VM in the resource group.
    #[arg(long)]
    pub all: bool,
    #[command(flatten)]
    pub sync: PushSyncFlags,
    #[command(flatten)]
    pub azure: AzureFlags,
}

/// How `push` (and `vm create`) sync the home.
#[derive(Debug, Clone, Default, Args)]
pub struct PushSyncFlags {
    /// The home profile to push (setting `home_dir`, default ~/.azlin/home).
    #[arg(long, value_name = "DIR")]
    pub home: Option<PathBuf>,
    /// Remove files in the VM's home that the profile does not have (excluded ones are kept).
    #[arg(long)]
    pub delete: bool,
    /// Do not scan file contents for credentials (the file-name rules still apply).
    #[arg(long)]
    pub no_scan_secrets: bool,
    /// How many VMs to sync at once.
    #[arg(long, default_value_t = 4, value_name = "N",
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: u16,
    /// Print one JSON summary object on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct VmArgs {
    #[command(subcommand)]
    pub command: VmCommand,
    #[command(flatten)]
    pub azure: AzureFlags,
}

#[derive(Debug, Subcommand)]
pub enum VmCommand {
    /// Create a VM with the developer tools, wait for it, then push the home (or mount the NFS
    /// home with --nfs).
    Create(Box<VmCreateArgs>),
    /// The VMs in the resource group: name, power state, public IP, size.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One VM in detail.
    Show {
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a stopped VM.
    Start { name: String },
    /// Stop a VM and deallocate it (no compute charges while stopped).
    Stop { name: String },
    /// Delete a VM (its OS disk and network interface go with it).
    Delete {
        name: String,
        /// Really delete it.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Args)]
pub struct VmCreateArgs {
    /// VM name (default azlin-YYYYMMDD-HHMMSS, UTC).
    pub name: Option<String>,
    /// VM size (setting `default_vm_size`).
    #[arg(long, value_name = "SIZE")]
    pub size: Option<String>,
    /// Image URN (setting `image`, default Ubuntu 24.04 LTS).
    #[arg(long, value_name = "URN")]
    pub image: Option<String>,
    /// Mount this storage account's NFS share as the home instead of pushing
    /// (setting `default_nfs_storage` is not used unless this is given).
    #[arg(long, value_name = "STORAGE")]
    pub nfs: Option<String>,
    /// Create the VM and wait for it, but push nothing.
    #[arg(long, conflicts_with = "nfs")]
    pub no_push: bool,
    /// Give up waiting for SSH after this many seconds.
    #[arg(long, default_value_t = 600, value_name = "SECS")]
    pub ssh_timeout: u64,
    /// Give up waiting for cloud-init after this many seconds.
    #[arg(long, default_value_t = 1800, value_name = "SECS")]
    pub cloud_init_timeout: u64,
    #[command(flatten)]
    pub sync: PushSyncFlags,
}

#[derive(Debug, Args)]
pub struct StorageArgs {
    #[command(subcommand)]
    pub command: StorageCommand,
    #[command(flatten)]
    pub azure: AzureFlags,
}

#[derive(Debug, Subcommand)]
pub enum StorageCommand {
    /// Create a premium FileStorage account with an NFS share, reachable from the VMs' subnet.
    Create(StorageCreateArgs),
    /// The FileStorage accounts in the resource group.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// An account's share, quota and network rules.
    Status {
        /// Storage account (default: setting `default_nfs_storage`).
        name: Option<String>,
        #[command(flatten)]
        share: ShareFlags,
    },
    /// Mount the NFS share as a VM's home (the old home is moved aside, and copied in if the
    /// share is empty).
    Mount {
        /// Storage account (default: setting `default_nfs_storage`).
        name: Option<String>,
        /// The VM.
        #[arg(long, value_name = "VM")]
        vm: String,
        #[command(flatten)]
        share: ShareFlags,
    },
    /// Unmount the NFS home from a VM and put its old home back.
    Unmount {
        /// Storage account (default: setting `default_nfs_storage`).
        name: Option<String>,
        /// The VM.
        #[arg(long, value_name = "VM")]
        vm: String,
        #[command(flatten)]
        share: ShareFlags,
    },
    /// Delete a storage account and everything in it.
    Delete {
        name: String,
        /// Really delete it.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Args)]
pub struct ShareFlags {
    /// The NFS share in the account.
    #[arg(long, default_value = "home", value_name = "NAME")]
    pub share: String,
}

#[derive(Debug, Args)]
pub struct StorageCreateArgs {
    /// Storage account name: 3 to 24 lowercase letters and digits, unique in Azure.
    pub name: String,
    /// Share size in GiB (premium shares: 100 to 102400).
    #[arg(long, default_value_t = 100, value_name = "N")]
    pub size_gb: u32,
    #[command(flatten)]
    pub share: ShareFlags,
    /// The VNet whose subnet may reach the share (the one `vm create` puts VMs in).
    #[arg(long, default_value = "azlin-vnet", value_name = "NAME")]
    pub vnet: String,
    /// The subnet that may reach the share.
    #[arg(long, default_value = "azlin-subnet", value_name = "NAME")]
    pub subnet: String,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    #[command(subcommand)]
    pub command: ConfigCommand,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the settings file's path.
    Path,
    /// Print the settings in force (file values and defaults).
    Show,
    /// Set one setting in the file; comments and other settings are kept.
    Set { key: String, value: String },
    /// Remove one setting from the file.
    Unset { key: String },
}
