//! End-to-end benchmark: `azsync sync` against `rsync -a`, local source to a local destination,
//! or (`--ssh`) to the same machine through a real OpenSSH server on 127.0.0.1.
//!
//! ```text
//! cargo build --release -p sync-cli -p azsync-benches
//! target/release/e2e [--files 50000] [--runs 3] [--dir /dev/shm/azsync-bench] \
//!     [--azsync target/release/azsync] [--markdown out.md] [--seed 1] [--quick] [--keep] \
//!     [--no-verify] [--ssh [--ssh-variants rsh,native]]
//!
//! target/release/e2e --quick --ssh          # smoke check over SSH: 2,000 files, 1 run
//! target/release/e2e --ssh --markdown ssh.md  # 50,000 files, 3 runs, over SSH
//! ```
//!
//! (`cargo run --release -p azsync-benches --bin e2e -- ARGS` does the same.)
//!
//! ```text
//! --files N      regular files in the generated tree (default 50,000)
//! --runs N       runs per tool per scenario (default 3)
//! --dir PATH     working directory (default /dev/shm/azsync-bench: tmpfs, because disk timings
//!                on this kind of machine are noisy). Created if missing and wiped at the start;
//!                a non-empty directory that this harness did not make is refused. Needs room
//!                for 1 + 2 × tools copies of the tree (the source, then a destination and a
//!                baseline per tool: 5 locally, 7 with --ssh and both variants); removed at the
//!                end unless --keep.
//! --azsync PATH  the binary (default target/release/azsync; also looked for in
//!                $CARGO_TARGET_DIR/release and in this workspace's target/release)
//! --markdown F   also write the report to F
//! --seed N       seed of the tree (default 1); the same seed gives the same tree
//! --quick        smoke check: 2,000 files and 1 run (an explicit --files or --runs wins)
//! --keep         keep the working directory
//! --no-verify    skip comparing each destination with the source after each run
//! --ssh          sync over SSH to a loopback sshd started for the benchmark (see below)
//! --ssh-variants LIST
//!                the azsync variants of --ssh, comma-separated, run in that order before rsync:
//!                `rsh` (tool "azsync": the system ssh through --rsh) and `native` (tool
//!                "azsync-native": azsync's built-in SSH client) and `sftp` (tool
//!                "azsync-sftp": the built-in client with --sftp, no agent; its remote
//!                side is sshd's SFTP server, not measured); default rsh,native,sftp.
//!                (An SFTP variant is not implemented yet.)
//! ```
//!
//! The tree is deterministic (rand_chacha from `--seed`) and home-like: mostly small text
//! files (100 B – 8 KB, log-uniform), 3% binaries (16–256 KB), one 1–20 MB file per 2,500 files
//! (1 to 20 of them), about 20 files per directory, directories nested up to 5 deep, a few
//! relative symlinks, a few executable scripts, fixed mtimes in 2024.
//!
//! Scenarios, each run `--runs` times per tool, alternating the tools (azsync, rsync, azsync,
//! rsync, ...; with --ssh: azsync, azsync-native, rsync, ...):
//! 1. initial sync: into an empty destination (emptied before each run, not timed);
//! 2. no-op re-sync: the destination is already up to date;
//! 3. 1% changed: 1% of the source files (at least one) are rewritten once: a span of about 5%
//!    gets new bytes, 1–64 bytes are appended and the mtime moves forward. Each tool's
//!    up-to-date destination is saved with `cp -a` beforehand, and every run syncs into a fresh
//!    `cp -a` copy of it (not timed), so every run starts from the same state.
//!
//! Locally the commands are `azsync sync --no-progress SRC DST` (contents of SRC into DST) and
//! `rsync -a SRC/ DST/`. Each runs under `/usr/bin/time -f '%e %M'` (GNU time; `apt-get install
//! time` if it is missing): wall time is taken by the harness's own clock around it, and peak RSS
//! is GNU time's `%M`, the `ru_maxrss` that `wait4` reports: the largest single process among
//! the child and the descendants it waited for (azsync and its `azsync agent --stdio`; rsync's
//! sender, generator and receiver), not their sum. rsync must be on `PATH` (`apt-get install
//! rsync`).
//!
//! With `--ssh` the harness starts `/usr/sbin/sshd -D -e` on a free port of 127.0.0.1 (`apt-get
//! install openssh-server openssh-client`; as in the tests: fresh ed25519 host and client keys
//! from ssh-keygen, `StrictModes no`, `UsePAM no`, `PidFile none`, `SetEnv HOME=` a temp home,
//! log in `DIR/logs/sshd.log`), logs in as the current user (root here: the destination is
//! `root@127.0.0.1:DST` with DST absolute, on this machine, so it is checked like a local one),
//! and stops sshd at the end. With SSH = `ssh -p PORT -i KEY -o IdentitiesOnly=yes -o
//! UserKnownHostsFile=KH -o StrictHostKeyChecking=yes -o BatchMode=yes`, the commands are:
//!
//! ```text
//! azsync        azsync sync --no-progress --json --rsh "SSH" --agent-path WRAP \
//!                   SRC root@127.0.0.1:DST
//! azsync-native azsync sync --no-progress --json -p PORT --key KEY --known-hosts KH \
//!                   --agent-path WRAP SRC root@127.0.0.1:DST
//! rsync         rsync -a --stats -e "SSH" --rsync-path="/usr/bin/time -f %M -a -o RLOG rsync" \
//!                   SRC/ root@127.0.0.1:DST/
//! ```
//!
//! WRAP is a script (`DIR/ssh/<tool>-agent`): `exec /usr/bin/time -f %M -a -o ALOG azsync
//! "$@"`; azsync runs `cd && exec WRAP agent --stdio` on the remote, and with `--agent-path`
//! nothing is deployed. So each run gets two peak RSS figures: local (GNU time around the client:
//! azsync or rsync, with its `ssh` child; azsync-native has none; the largest single process, so
//! where ssh is larger than the client, ssh's) and remote (what sshd started: the azsync agent,
//! or rsync's server with its receiver), read from ALOG/RLOG and cleared after every run. Bytes
//! on the wire are as each tool counts them, the payload inside SSH before encryption: azsync's
//! `--json` `bytes_sent` + `bytes_received`, rsync's `--stats` "Total bytes sent" + "Total bytes
//! received". If azsync says a variant is "not available in this build"
//! (azsync-native before the built-in client lands), that variant is marked unsupported in the
//! report and skipped; it does not fail the benchmark. Client, server and both trees share this
//! machine's CPUs, so this measures CPU cost and round trips on loopback, not a network.
//!
//! After every run the destination is compared with the source (types, contents, sizes, modes,
//! mtimes to the nanosecond, link targets, no extra entries), so a fast but wrong run shows up.
//!
//! Progress goes to stderr; the Markdown report goes to stdout: the mode in the title, machine,
//! tool versions, date, tree size, commands, then locally `scenario | azsync median s | rsync
//! median s | ratio | azsync peak RSS MB | rsync peak RSS MB`, and with --ssh one row per tool
//! per scenario: `scenario | tool | median s | ratio to rsync | local peak RSS MB | remote peak
//! RSS MB | wire MB`, then every run. A run that fails is reported (the scenario is flagged and
//! the error listed under the table) and the benchmark goes on. The exit code is 0; 1 on an
//! error, or if a run failed or a destination differed from the source (the report is still
//! printed); 2 on a usage error.

mod report;
mod run;
mod sshd;
mod tree;
mod verify;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{bail, Context, Result};

use report::{Mode, Scenario, Setup, ToolRuns};
use run::{Remote, Sample, Timer, Tool, Variant};
use sshd::{Sshd, Target};
use tree::Plan;

const DEFAULT_FILES: usize = 50_000;
const DEFAULT_RUNS: usize = 3;
const QUICK_FILES: usize = 2_000;
const QUICK_RUNS: usize = 1;
const DEFAULT_DIR: &str = "/dev/shm/azsync-bench";
const DEFAULT_AZSYNC: &str = "target/release/azsync";
/// The azsync variants of `--ssh` without `--ssh-variants`.
const DEFAULT_VARIANTS: [Variant; 3] = [Variant::Rsh, Variant::Native, Variant::Sftp];
/// Marks a working directory as this harness's, so that it may be wiped.
const MARKER: &str = ".azsync-bench-workdir";

const USAGE: &str = "usage: e2e [--files N] [--runs N] [--dir PATH] [--azsync PATH] \
[--markdown FILE] [--seed N] [--quick] [--keep] [--no-verify] [--ssh [--ssh-variants LIST]]
  --files N       regular files in the generated tree (default 50000; 2000 with --quick)
  --runs N        runs per tool per scenario (default 3; 1 with --quick)
  --dir PATH      working directory (default /dev/shm/azsync-bench)
  --azsync PATH   azsync binary (default target/release/azsync)
  --markdown FILE also write the Markdown report to FILE
  --seed N        seed of the generated tree (default 1)
  --quick         smoke check: 2000 files, 1 run
  --keep          keep the working directory afterwards
  --no-verify     do not compare destinations with the source after each run
  --ssh           sync to 127.0.0.1 through a loopback OpenSSH sshd started for the run
  --ssh-variants LIST
                  azsync variants for --ssh, comma-separated: rsh (system ssh, --rsh),
                  native (built-in SSH client), sftp (built-in client, --sftp);
                  default rsh,native,sftp";

#[derive(Debug, Clone)]
struct Options {
    files: usize,
    runs: usize,
    dir: PathBuf,
    azsync: Option<PathBuf>,
    markdown: Option<PathBuf>,
    seed: u64,
    keep: bool,
    verify: bool,
    /// `--ssh`: the azsync variants to run (rsync always runs); `None` for the local mode.
    ssh: Option<Vec<Variant>>,
}

fn main() -> ExitCode {
    let opts = match parse_args(std::env::args_os().skip(1)) {
        Ok(Some(opts)) => opts,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(msg) => {
            eprintln!("e2e: {msg}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match bench(&opts) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!(
                "e2e: a run failed or a destination differed from the source; see the report"
            );
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("e2e: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `Ok(None)` for `--help`.
fn parse_args(args: impl Iterator<Item = OsString>) -> Result<Option<Options>, String> {
    let (mut files, mut runs, mut quick) = (None, None, false);
    let (mut ssh, mut variants) = (false, None);
    let mut opts = Options {
        files: DEFAULT_FILES,
        runs: DEFAULT_RUNS,
        dir: default_dir(),
        azsync: None,
        markdown: None,
        seed: 1,
        keep: false,
        verify: true,
        ssh: None,
    };
    let mut args = args.map(|a| {
        a.into_string()
            .map_err(|a| format!("argument {a:?} is not UTF-8"))
    });
    while let Some(arg) = args.next() {
        let arg = arg?;
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) if flag.starts_with("--") => {
                (flag.to_string(), Some(value.to_string()))
            }
            _ => (arg.clone(), None),
        };
        let mut value = || -> Result<String, String> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args
                    .next()
                    .unwrap_or_else(|| Err(format!("{flag} needs a value"))),
            }
        };
        let number = |v: String| {
            v.parse::<u64>()
                .map_err(|_| format!("{flag}: {v:?} is not a number"))
        };
        match flag.as_str() {
            "--files" => files = Some(number(value()?)? as usize),
            "--runs" => runs = Some(number(value()?)? as usize),
            "--dir" => opts.dir = value()?.into(),
            "--azsync" => opts.azsync = Some(value()?.into()),
            "--markdown" => opts.markdown = Some(value()?.into()),
            "--seed" => opts.seed = number(value()?)?,
            "--quick" => quick = true,
            "--keep" => opts.keep = true,
            "--no-verify" => opts.verify = false,
            "--ssh" => ssh = true,
            "--ssh-variants" => variants = Some(parse_variants(&value()?)?),
            "-h" | "--help" => return Ok(None),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
        if inline.is_some()
            && matches!(
                flag.as_str(),
                "--quick" | "--keep" | "--no-verify" | "--ssh"
            )
        {
            return Err(format!("{flag} takes no value"));
        }
    }
    opts.files = files.unwrap_or(if quick { QUICK_FILES } else { DEFAULT_FILES });
    opts.runs = runs.unwrap_or(if quick { QUICK_RUNS } else { DEFAULT_RUNS });
    if opts.files == 0 || opts.runs == 0 {
        return Err("--files and --runs must be at least 1".into());
    }
    match (ssh, variants) {
        (true, variants) => opts.ssh = Some(variants.unwrap_or(DEFAULT_VARIANTS.to_vec())),
        (false, Some(_)) => return Err("--ssh-variants needs --ssh".into()),
        (false, None) => {}
    }
    Ok(Some(opts))
}

/// `rsh,native` as variants, in the order given, without repeats.
fn parse_variants(list: &str) -> Result<Vec<Variant>, String> {
    let mut variants = Vec::new();
    for name in list.split(',').map(str::trim) {
        let variant = Variant::parse(name).ok_or_else(|| {
            format!("--ssh-variants: unknown variant {name:?} (choose from rsh, native, sftp)")
        })?;
        if !variants.contains(&variant) {
            variants.push(variant);
        }
    }
    Ok(variants)
}

fn default_dir() -> PathBuf {
    let shm = Path::new(DEFAULT_DIR);
    if shm.parent().is_some_and(Path::is_dir) {
        shm.to_path_buf()
    } else {
        std::env::temp_dir().join("azsync-bench")
    }
}

/// The azsync binary: `--azsync`, or the usual places of a release build.
fn find_azsync(given: Option<&Path>) -> Result<PathBuf> {
    let candidates: Vec<PathBuf> = match given {
        Some(path) => vec![path.to_path_buf()],
        None => {
            let mut c = Vec::new();
            if let Some(target) = std::env::var_os("CARGO_TARGET_DIR") {
                c.push(PathBuf::from(target).join("release/azsync"));
            }
            c.push(DEFAULT_AZSYNC.into());
            c.push(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("..")
                    .join(DEFAULT_AZSYNC),
            );
            c
        }
    };
    for candidate in &candidates {
        if candidate.is_file() {
            return fs::canonicalize(candidate)
                .with_context(|| format!("resolving {}", candidate.display()));
        }
    }
    let looked: Vec<_> = candidates.iter().map(|c| c.display().to_string()).collect();
    bail!(
        "azsync binary not found (looked at {}): build it with `cargo build --release -p sync-cli` \
         or pass --azsync PATH",
        looked.join(", ")
    )
}

/// Makes `dir` an empty working directory of this harness.
fn prepare_workdir(dir: &Path) -> Result<PathBuf> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if dir.join(MARKER).exists() {
                for entry in fs::read_dir(dir)? {
                    let path = entry?.path();
                    remove(&path)?;
                }
            } else if entries.next().is_some() {
                bail!(
                    "{} exists, is not empty and was not made by this harness (no {MARKER}); \
                     choose another --dir or empty it",
                    dir.display()
                );
            }
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    }
    fs::write(
        dir.join(MARKER),
        "working directory of the azsync e2e benchmark; safe to delete\n",
    )?;
    fs::create_dir(dir.join("logs"))?;
    fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))
}

/// Removes a file or a whole directory tree; a missing path is fine.
fn remove(path: &Path) -> Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.with_context(|| format!("removing {}", path.display()))
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .context("running cp -a")?;
    if !status.success() {
        bail!(
            "cp -a {} {} failed ({status})",
            from.display(),
            to.display()
        );
    }
    Ok(())
}

/// Free bytes on the file system of `dir`, from `df -Pk`.
fn free_bytes(dir: &Path) -> Option<u64> {
    let out = Command::new("df").arg("-Pk").arg(dir).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let kib: u64 = text
        .lines()
        .nth(1)?
        .split_whitespace()
        .nth(3)?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

struct Bench {
    timer: Timer,
    /// In run order; rsync last.
    tools: Vec<Tool>,
    work: PathBuf,
    src: PathBuf,
    runs: usize,
    verify: bool,
    /// Tools this build cannot run (the first such failure says why); skipped from then on.
    unsupported: RefCell<BTreeMap<&'static str, String>>,
}

/// What a build of azsync without the built-in SSH client says when asked for it.
const UNSUPPORTED: &str = "not available in this build";

impl Bench {
    fn dst(&self, tool: &Tool) -> PathBuf {
        self.work.join(format!("dst-{}", tool.name))
    }

    fn base(&self, tool: &Tool) -> PathBuf {
        self.work.join(format!("base-{}", tool.name))
    }

    fn is_unsupported(&self, tool: &Tool) -> bool {
        self.unsupported.borrow().contains_key(tool.name)
    }

    /// Runs one scenario: `runs` rounds of (each tool in turn), each run after `prepare` (not
    /// timed).
    fn scenario(
        &self,
        key: &str,
        name: &str,
        mut prepare: impl FnMut(&Tool, &Path) -> Result<()>,
    ) -> Result<Scenario> {
        eprintln!("scenario: {name}");
        let mut scenario = Scenario {
            name: name.to_string(),
            tools: self.tools.iter().map(|t| ToolRuns::new(t.name)).collect(),
            problems: Vec::new(),
        };
        for run in 1..=self.runs {
            for (tool, runs) in self.tools.iter().zip(&mut scenario.tools) {
                if self.is_unsupported(tool) {
                    continue;
                }
                let dst = self.dst(tool);
                prepare(tool, &dst)?;
                tool.clear_remote()?;
                let log = self
                    .work
                    .join("logs")
                    .join(format!("{key}-{}-{run}.log", tool.name));
                let argv = tool.argv(&self.src, &dst);
                let run_result = self
                    .timer
                    .run(&argv, &log)
                    .with_context(|| format!("{name}: {} run {run}", tool.name))?;
                let finished = match run_result {
                    Ok(finished) => finished,
                    Err(failure) if failure.output.contains(UNSUPPORTED) => {
                        let why = failure
                            .output
                            .lines()
                            .find(|l| l.contains(UNSUPPORTED))
                            .unwrap_or(UNSUPPORTED)
                            .trim()
                            .to_string();
                        eprintln!(
                            "  run {run}/{}  {:<13} UNSUPPORTED by this build, skipped from now \
                             on: {why}",
                            self.runs, tool.name
                        );
                        self.unsupported.borrow_mut().insert(tool.name, why);
                        continue;
                    }
                    Err(failure) => {
                        // A failed run is a result, not the end of the benchmark: the other runs
                        // and scenarios still say something, and the exit code is 1 at the end.
                        eprintln!(
                            "  run {run}/{}  {:<13} FAILED ({}): {}\n    command: {}\n    output: {}",
                            self.runs,
                            tool.name,
                            failure.status,
                            failure.tail.replace('\n', "\n    "),
                            run::shell_words(&argv),
                            failure.log.display()
                        );
                        let last = failure.tail.lines().last().unwrap_or("(no output)");
                        scenario.problems.push(format!(
                            "{name}, {} run {run} failed ({}): `{}`",
                            tool.name,
                            failure.status,
                            last.trim()
                        ));
                        runs.failed += 1;
                        tool.clear_remote()?;
                        continue;
                    }
                };
                let sample: Sample = tool.sample(&finished)?;
                eprint!(
                    "  run {run}/{}  {:<13} {:>8.3} s  {:>7.1} MiB",
                    self.runs,
                    tool.name,
                    sample.wall.as_secs_f64(),
                    sample.max_rss_kib as f64 / 1024.0
                );
                if let Some(kib) = sample.remote_rss_kib {
                    eprint!("  remote {:>7.1} MiB", kib as f64 / 1024.0);
                }
                if let Some(wire) = sample.wire {
                    eprint!(
                        "  wire {} / {} B",
                        report::thousands(wire.sent),
                        report::thousands(wire.received)
                    );
                }
                if self.verify {
                    let check = verify::compare(&self.src, &dst, tool.name == "azsync-sftp")
                        .with_context(|| format!("checking {}", dst.display()))?;
                    if check.ok() {
                        eprintln!("  (destination checked: {} entries match)", check.entries);
                    } else {
                        eprintln!("  DESTINATION DIFFERS: {}", check.examples.join("; "));
                        scenario.problems.push(format!(
                            "{name}, {} run {run}: the destination differs from the source in {} \
                             of {} entries, e.g. {}",
                            tool.name,
                            check.problems,
                            check.entries,
                            check.examples.join("; ")
                        ));
                    }
                } else {
                    eprintln!();
                }
                runs.samples.push(sample);
            }
        }
        for (tool, runs) in self.tools.iter().zip(&mut scenario.tools) {
            runs.unsupported = self.unsupported.borrow().get(tool.name).cloned();
        }
        Ok(scenario)
    }
}

/// The tools of `--ssh` mode, with their wrapper scripts and remote RSS logs in `work/ssh`.
fn ssh_tools(
    target: &Target,
    azsync: &Path,
    rsync: &Path,
    variants: &[Variant],
    work: &Path,
) -> Result<Vec<Tool>> {
    let dir = work.join("ssh");
    fs::create_dir_all(&dir)?;
    let mut tools = Vec::new();
    for &variant in variants {
        let name = variant.tool_name();
        let rss_log = dir.join(format!("{name}-remote-rss.log"));
        let wrapper = dir.join(format!("{name}-agent"));
        run::write_agent_wrapper(&wrapper, azsync, &rss_log)?;
        tools.push(Tool::azsync_ssh(
            azsync.to_path_buf(),
            variant,
            Remote {
                target: target.clone(),
                rss_log,
                agent_wrapper: Some(wrapper),
            },
        ));
    }
    tools.push(Tool::rsync_ssh(
        rsync.to_path_buf(),
        Remote {
            target: target.clone(),
            rss_log: dir.join("rsync-remote-rss.log"),
            agent_wrapper: None,
        },
    ));
    Ok(tools)
}

/// The whole benchmark; `Ok(false)` if a run failed or a destination differed from the source.
fn bench(opts: &Options) -> Result<bool> {
    let rsync_path = run::which("rsync")
        .context("rsync not found on PATH: install rsync: apt-get install rsync")?;
    let azsync_path = find_azsync(opts.azsync.as_deref())?;
    let timer = Timer::new()?;
    let rsync_version = Tool::rsync(rsync_path.clone()).version()?;
    let azsync_version = Tool::azsync(azsync_path.clone()).version()?;

    let plan = Plan::generate(opts.files, opts.seed);
    let work = prepare_workdir(&opts.dir)?;
    let tool_count = match &opts.ssh {
        Some(variants) => variants.len() as u64 + 1,
        None => 2,
    };
    // The source, and a destination and a baseline per tool.
    let copies = 1 + 2 * tool_count;
    let need = plan.footprint() * copies + plan.footprint() / 10;
    if let Some(free) = free_bytes(&work) {
        if free < need {
            bail!(
                "{} has {:.1} GiB free but the benchmark needs about {:.1} GiB ({copies} copies of \
                 the tree); choose another --dir or fewer --files",
                work.display(),
                free as f64 / (1u64 << 30) as f64,
                need as f64 / (1u64 << 30) as f64
            );
        }
    }

    // Started before the tree is written, so that a missing sshd fails fast.
    let sshd = match &opts.ssh {
        Some(_) => {
            let sshd = Sshd::start(&work.join("sshd"), &work.join("logs").join("sshd.log"))?;
            eprintln!(
                "sshd listening on 127.0.0.1:{} ({})",
                sshd.target.port, sshd.version
            );
            Some(sshd)
        }
        None => None,
    };
    let (tools, mode) = match (&opts.ssh, &sshd) {
        (Some(variants), Some(sshd)) => (
            ssh_tools(&sshd.target, &azsync_path, &rsync_path, variants, &work)?,
            Mode::Ssh {
                openssh: sshd.version.clone(),
            },
        ),
        _ => (
            vec![Tool::azsync(azsync_path), Tool::rsync(rsync_path)],
            Mode::Local,
        ),
    };

    let src = work.join("src");
    eprintln!(
        "generating {} files ({:.1} MiB, seed {}) in {}",
        report::thousands(opts.files as u64),
        plan.total_bytes() as f64 / 1048576.0,
        opts.seed,
        src.display()
    );
    let started = std::time::Instant::now();
    plan.write(&src)?;
    eprintln!("  done in {:.1} s", started.elapsed().as_secs_f64());

    let commands = tools
        .iter()
        .map(|t| {
            // SRC and DST as placeholders (DST is absolute over SSH), the program's name, not
            // its path.
            let dst = match mode {
                Mode::Local => "DST",
                Mode::Ssh { .. } => "/DST",
            };
            let argv = t.argv(Path::new("SRC"), Path::new(dst));
            let program = if t.is_rsync() { "rsync" } else { "azsync" };
            (
                t.name.to_string(),
                format!("{program} {}", run::shell_words(&argv[1..])),
            )
        })
        .collect();
    let (cpus, cpu_model, mem_total, kernel) = report::machine();
    let setup = Setup {
        cpus,
        cpu_model,
        mem_total,
        kernel,
        rsync_version,
        azsync_version,
        date: report::utc_now(),
        dir: work.display().to_string(),
        fs_type: report::fs_type(&work),
        seed: opts.seed,
        runs: opts.runs,
        files: plan.files.len(),
        dirs: plan.dirs.len(),
        symlinks: plan.symlinks.len(),
        total_bytes: plan.total_bytes(),
        mode,
        commands,
    };

    let bench = Bench {
        timer,
        tools,
        work: work.clone(),
        src: src.clone(),
        runs: opts.runs,
        verify: opts.verify,
        unsupported: RefCell::new(BTreeMap::new()),
    };
    let mut scenarios = Vec::new();
    scenarios.push(bench.scenario(
        "initial",
        "initial sync into an empty destination",
        |_, dst| {
            remove(dst)?;
            fs::create_dir(dst).with_context(|| format!("creating {}", dst.display()))
        },
    )?);
    scenarios.push(bench.scenario("noop", "no-op re-sync", |_, _| Ok(()))?);

    for tool in &bench.tools {
        if !bench.is_unsupported(tool) {
            copy_tree(&bench.dst(tool), &bench.base(tool))?;
        }
    }
    let change = plan.change_some(&src, opts.seed)?;
    eprintln!(
        "changed {} source files ({} bytes after the change)",
        change.files,
        report::thousands(change.bytes)
    );
    let name = format!(
        "1% changed ({} files)",
        report::thousands(change.files as u64)
    );
    scenarios.push(bench.scenario("changed", &name, |tool, dst| {
        remove(dst)?;
        copy_tree(&bench.base(tool), dst)
    })?);
    drop(sshd);

    let md = report::markdown(&setup, &scenarios);
    println!("{md}");
    if let Some(path) = &opts.markdown {
        fs::write(path, &md).with_context(|| format!("writing {}", path.display()))?;
        eprintln!("report written to {}", path.display());
    }
    let all_good = scenarios.iter().all(|s| s.problems.is_empty());
    if opts.keep {
        eprintln!("working directory kept: {}", work.display());
    } else if all_good {
        remove(&work)?;
    } else {
        // The trees go (on tmpfs they hold memory); the tools' output stays for a look.
        for tool in &bench.tools {
            remove(&bench.dst(tool))?;
            remove(&bench.base(tool))?;
        }
        remove(&src)?;
        eprintln!(
            "the tools' output is kept in {}",
            work.join("logs").display()
        );
    }
    Ok(all_good)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Options>, String> {
        parse_args(args.iter().map(OsString::from))
    }

    #[test]
    fn defaults_and_quick() {
        let o = parse(&[]).unwrap().unwrap();
        assert_eq!(
            (o.files, o.runs, o.seed, o.verify),
            (DEFAULT_FILES, DEFAULT_RUNS, 1, true)
        );
        let o = parse(&["--quick"]).unwrap().unwrap();
        assert_eq!((o.files, o.runs), (QUICK_FILES, QUICK_RUNS));
        let o = parse(&["--quick", "--runs", "2", "--files=10"])
            .unwrap()
            .unwrap();
        assert_eq!((o.files, o.runs), (10, 2));
        let o = parse(&["--dir", "/tmp/x", "--markdown", "o.md", "--azsync=/bin/az"])
            .unwrap()
            .unwrap();
        assert_eq!(o.dir, PathBuf::from("/tmp/x"));
        assert_eq!(o.markdown, Some(PathBuf::from("o.md")));
        assert_eq!(o.azsync, Some(PathBuf::from("/bin/az")));
        assert!(parse(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn usage_errors() {
        assert!(parse(&["--files"]).is_err());
        assert!(parse(&["--files", "x"]).is_err());
        assert!(parse(&["--runs", "0"]).is_err());
        assert!(parse(&["--bogus"]).is_err());
        assert!(parse(&["--keep=1"]).is_err());
        assert!(parse(&["--ssh=1"]).is_err());
        assert!(parse(&["--ssh-variants", "rsh"]).is_err());
        assert!(parse(&["--ssh", "--ssh-variants", "scp"]).is_err());
    }

    #[test]
    fn ssh_mode() {
        assert_eq!(parse(&[]).unwrap().unwrap().ssh, None);
        let o = parse(&["--ssh", "--quick"]).unwrap().unwrap();
        assert_eq!(
            o.ssh,
            Some(vec![Variant::Rsh, Variant::Native, Variant::Sftp])
        );
        let o = parse(&["--ssh", "--ssh-variants", "native"])
            .unwrap()
            .unwrap();
        assert_eq!(o.ssh, Some(vec![Variant::Native]));
        let o = parse(&["--ssh-variants=native, rsh,native", "--ssh"])
            .unwrap()
            .unwrap();
        assert_eq!(o.ssh, Some(vec![Variant::Native, Variant::Rsh]));
    }

    #[test]
    fn refuses_foreign_dirs() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("azsync-bench-wd-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        fs::write(dir.join("precious"), b"x")?;
        assert!(prepare_workdir(&dir).is_err());
        fs::remove_file(dir.join("precious"))?;
        let work = prepare_workdir(&dir)?;
        fs::write(work.join("leftover"), b"x")?;
        prepare_workdir(&dir)?;
        assert!(!work.join("leftover").exists());
        assert!(work.join(MARKER).exists());
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
