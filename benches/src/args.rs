//! The harness's options, as a clap `Args` that both the `e2e` binary and `azsync bench` flatten
//! into their own command line.

use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};

use crate::run::Variant;

pub(crate) const DEFAULT_FILES: usize = 50_000;
pub(crate) const DEFAULT_RUNS: usize = 3;
pub(crate) const QUICK_FILES: usize = 2_000;
pub(crate) const QUICK_RUNS: usize = 1;
/// tmpfs: this kind of machine's disk swings several times between runs of 50,000-file writes,
/// which drowns the engines' difference.
pub(crate) const DEFAULT_DIR: &str = "/dev/shm/azsync-bench";

/// The end-to-end benchmark: azsync against `rsync -a` (and `cp -a` for the first sync) on a
/// generated home-like tree, locally, over a loopback OpenSSH server (`--ssh`), or through a
/// simulated WAN (`--wan`).
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Regular files in the generated tree [default: 50000; 2000 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=5_000_000))]
    pub files: Option<u64>,

    /// Runs per tool per scenario [default: 3; 1 with --quick]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub runs: Option<u64>,

    /// Working directory [default: /dev/shm/azsync-bench, a tmpfs]. `--disk PATH` puts it on a
    /// real disk. Created if missing and wiped at the start (a non-empty directory the harness
    /// did not make is refused); needs room for three copies of the tree.
    #[arg(long, visible_alias = "disk", value_name = "PATH")]
    pub dir: Option<PathBuf>,

    /// Also write the Markdown report to FILE
    #[arg(long, alias = "markdown", value_name = "FILE")]
    pub out: Option<PathBuf>,

    /// Seed of the generated tree; the same seed gives the same tree
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub seed: u64,

    /// Smoke check: 2000 files and 1 run (an explicit --files or --runs wins)
    #[arg(long)]
    pub quick: bool,

    /// Keep the working directory afterwards
    #[arg(long)]
    pub keep: bool,

    /// Do not compare each destination with the source after each run
    #[arg(long)]
    pub no_verify: bool,

    /// Sync to 127.0.0.1 through a loopback OpenSSH sshd started for the run
    #[arg(long)]
    pub ssh: bool,

    /// Like --ssh, through a simulated WAN (a delaying, rate-capping TCP proxy between client
    /// and sshd), with compression on: azsync --compress (when the build has it), rsync -z
    #[arg(long)]
    pub wan: bool,

    /// Round trip time the WAN adds (half each way)
    #[arg(long, value_name = "MS", default_value_t = 40, requires = "wan")]
    pub wan_rtt_ms: u64,

    /// Bandwidth of the WAN each way, in megabits (10^6) per second
    #[arg(long, value_name = "MBIT", default_value_t = 100, requires = "wan",
          value_parser = clap::value_parser!(u64).range(1..))]
    pub wan_mbit: u64,

    /// azsync variants over SSH, run in this order before rsync [default: native,rsh,sftp;
    /// native,rsh with --wan, where SFTP's per-file round trips take hours]
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub ssh_variants: Option<Vec<VariantArg>>,

    /// Kill a run that takes longer than this many seconds and count it as failed (a hung run
    /// must not hang the benchmark)
    #[arg(long, value_name = "SECS", default_value_t = 1800,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub run_timeout: u64,

    /// Scenarios to run, in the order given [default: all]; a scenario after the first sync
    /// starts from an up-to-date copy whether or not the first sync ran
    #[arg(long, value_enum, value_delimiter = ',', value_name = "LIST")]
    pub scenarios: Option<Vec<ScenarioKind>>,
}

/// How azsync reaches the remote, as `--ssh-variants` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum VariantArg {
    /// azsync's built-in SSH client
    Native,
    /// The system ssh command, through --rsh
    Rsh,
    /// The built-in client in --sftp mode (no agent, no deltas)
    Sftp,
}

impl From<VariantArg> for Variant {
    fn from(v: VariantArg) -> Variant {
        match v {
            VariantArg::Native => Variant::Native,
            VariantArg::Rsh => Variant::Rsh,
            VariantArg::Sftp => Variant::Sftp,
        }
    }
}

/// The scenarios, in their default order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, ValueEnum)]
pub enum ScenarioKind {
    /// First sync into an empty destination (with a `cp -a` baseline)
    First,
    /// No-op re-sync: the destination is up to date
    Noop,
    /// No-op re-sync comparing contents: azsync --checksum, rsync -c
    Checksum,
    /// 1% of the files changed
    Changed,
    /// One 20 MiB file with a few KiB edited in several places
    BigEdit,
    /// 1% of the files deleted from the source, synced with --delete
    Delete,
}

impl ScenarioKind {
    pub(crate) const ALL: [ScenarioKind; 6] = [
        ScenarioKind::First,
        ScenarioKind::Noop,
        ScenarioKind::Checksum,
        ScenarioKind::Changed,
        ScenarioKind::BigEdit,
        ScenarioKind::Delete,
    ];

    /// Short name for logs and files.
    pub(crate) fn key(self) -> &'static str {
        match self {
            ScenarioKind::First => "first",
            ScenarioKind::Noop => "noop",
            ScenarioKind::Checksum => "checksum",
            ScenarioKind::Changed => "changed",
            ScenarioKind::BigEdit => "big-edit",
            ScenarioKind::Delete => "delete",
        }
    }
}

/// Where the benchmark syncs to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Where {
    Local,
    Ssh,
    Wan { rtt_ms: u64, mbit: u64 },
}

/// The options with every default resolved.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    pub files: usize,
    pub runs: usize,
    pub dir: PathBuf,
    pub out: Option<PathBuf>,
    pub seed: u64,
    pub keep: bool,
    pub verify: bool,
    /// A run still going after this is killed and counted as failed.
    pub run_timeout: std::time::Duration,
    pub target: Where,
    /// Over SSH: the azsync variants (rsync always runs); empty locally.
    pub variants: Vec<Variant>,
    pub scenarios: Vec<ScenarioKind>,
}

impl BenchArgs {
    pub(crate) fn resolve(&self) -> Result<Options, String> {
        let target = match (self.ssh, self.wan) {
            (_, true) => Where::Wan {
                rtt_ms: self.wan_rtt_ms,
                mbit: self.wan_mbit,
            },
            (true, false) => Where::Ssh,
            (false, false) => Where::Local,
        };
        let variants: Vec<Variant> = match (&self.ssh_variants, target) {
            (Some(_), Where::Local) => return Err("--ssh-variants needs --ssh or --wan".into()),
            (_, Where::Local) => Vec::new(),
            (Some(list), _) => {
                let mut v: Vec<Variant> = Vec::new();
                for &variant in list {
                    if !v.contains(&variant.into()) {
                        v.push(variant.into());
                    }
                }
                v
            }
            (None, Where::Ssh) => vec![Variant::Native, Variant::Rsh, Variant::Sftp],
            (None, Where::Wan { .. }) => vec![Variant::Native, Variant::Rsh],
        };
        let mut scenarios = self.scenarios.clone().unwrap_or(ScenarioKind::ALL.to_vec());
        let mut seen = std::collections::HashSet::new();
        scenarios.retain(|s| seen.insert(*s));
        let (files, runs) = if self.quick {
            (QUICK_FILES, QUICK_RUNS)
        } else {
            (DEFAULT_FILES, DEFAULT_RUNS)
        };
        Ok(Options {
            files: self.files.map_or(files, |n| n as usize),
            runs: self.runs.map_or(runs, |n| n as usize),
            dir: self.dir.clone().unwrap_or_else(default_dir),
            out: self.out.clone(),
            seed: self.seed,
            keep: self.keep,
            verify: !self.no_verify,
            run_timeout: std::time::Duration::from_secs(self.run_timeout),
            target,
            variants,
            scenarios,
        })
    }
}

fn default_dir() -> PathBuf {
    let shm = Path::new(DEFAULT_DIR);
    if shm.parent().is_some_and(Path::is_dir) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir().join("azsync-bench")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        args: BenchArgs,
    }

    fn parse(args: &[&str]) -> Result<Options, String> {
        let cli = Cli::try_parse_from(std::iter::once("e2e").chain(args.iter().copied()))
            .map_err(|e| e.to_string())?;
        cli.args.resolve()
    }

    #[test]
    fn defaults_and_quick() {
        let o = parse(&[]).unwrap();
        assert_eq!(
            (o.files, o.runs, o.seed, o.verify, o.target),
            (DEFAULT_FILES, DEFAULT_RUNS, 1, true, Where::Local)
        );
        assert_eq!(o.scenarios, ScenarioKind::ALL.to_vec());
        let o = parse(&["--quick"]).unwrap();
        assert_eq!((o.files, o.runs), (QUICK_FILES, QUICK_RUNS));
        let o = parse(&["--quick", "--runs", "2", "--files=10"]).unwrap();
        assert_eq!((o.files, o.runs), (10, 2));
        let o = parse(&["--disk", "/tmp/x", "--markdown", "o.md"]).unwrap();
        assert_eq!(o.dir, PathBuf::from("/tmp/x"));
        assert_eq!(o.out, Some(PathBuf::from("o.md")));
        let o = parse(&["--dir=/tmp/y", "--out", "p.md"]).unwrap();
        assert_eq!(o.dir, PathBuf::from("/tmp/y"));
        assert_eq!(o.out, Some(PathBuf::from("p.md")));
    }

    #[test]
    fn usage_errors() {
        for bad in [
            &["--files"][..],
            &["--files", "x"],
            &["--runs", "0"],
            &["--bogus"],
            &["--keep=1"],
            &["--ssh-variants", "rsh"],
            &["--ssh", "--ssh-variants", "scp"],
            &["--wan-rtt-ms", "10"],
            &["--wan", "--wan-mbit", "0"],
            &["--scenarios", "everything"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn ssh_and_wan() {
        let o = parse(&["--ssh", "--quick"]).unwrap();
        assert_eq!(o.target, Where::Ssh);
        assert_eq!(
            o.variants,
            vec![Variant::Native, Variant::Rsh, Variant::Sftp]
        );
        let o = parse(&["--ssh", "--ssh-variants", "native"]).unwrap();
        assert_eq!(o.variants, vec![Variant::Native]);
        let o = parse(&["--ssh-variants=rsh,native,rsh", "--ssh"]).unwrap();
        assert_eq!(o.variants, vec![Variant::Rsh, Variant::Native]);
        let o = parse(&["--wan"]).unwrap();
        assert_eq!(
            o.target,
            Where::Wan {
                rtt_ms: 40,
                mbit: 100
            }
        );
        assert_eq!(o.variants, vec![Variant::Native, Variant::Rsh]);
        let o = parse(&["--wan", "--wan-rtt-ms", "80", "--wan-mbit=20", "--ssh"]).unwrap();
        assert_eq!(
            o.target,
            Where::Wan {
                rtt_ms: 80,
                mbit: 20
            }
        );
        let o = parse(&["--scenarios", "delete,first,delete"]).unwrap();
        assert_eq!(o.scenarios, vec![ScenarioKind::Delete, ScenarioKind::First]);
    }
}
