//! The whole benchmark: working directory, tools, tree, scenarios, report.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use azsync_test_support::Proxy;

use crate::args::{BenchArgs, Options, ScenarioKind, Where};
use crate::report::{self, Mode, Scenario, Setup, ToolRuns};
use crate::run::{self, Flags, Remote, Sample, Timer, Tool, Variant};
use crate::sshd::{self, Sshd, Target};
use crate::tree::Plan;
use crate::{verify, wan};

const DEFAULT_AZSYNC: &str = "target/release/azsync";
/// Marks a working directory as this harness's, so that it may be wiped.
const MARKER: &str = ".azsync-bench-workdir";
/// What a build of azsync without a feature says when asked for it.
const UNSUPPORTED: &str = "not available in this build";

/// Runs the benchmark with `azsync` as the binary under test; prints the Markdown report on
/// stdout (and writes it to `--out`), progress on stderr.
///
/// An error if the harness could not run, and also if a run failed or a destination differed
/// from the source (the report is printed first and says which).
pub fn run(args: BenchArgs, azsync: PathBuf) -> Result<()> {
    let opts = args.resolve().map_err(anyhow::Error::msg)?;
    let azsync =
        fs::canonicalize(&azsync).with_context(|| format!("azsync binary {}", azsync.display()))?;
    if bench(&opts, azsync)? {
        Ok(())
    } else {
        bail!("a run failed or a destination differed from the source; see the report")
    }
}

/// The azsync binary: `given`, or the usual places of a release build (`$CARGO_TARGET_DIR`,
/// `target/release`, this workspace's `target/release`).
pub fn find_azsync(given: Option<&Path>) -> Result<PathBuf> {
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

/// `cp -a FROM TO`: TO becomes a copy of FROM (TO must not exist).
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

/// The median wall time of three `ssh HOST true` through `target`: what any SSH-based tool
/// pays before it does anything (connection, key exchange, authentication, a session).
fn ssh_floor(target: &Target) -> Result<Duration> {
    let mut times = Vec::new();
    for _ in 0..3 {
        let command = format!("{} {}@127.0.0.1 true", target.ssh_command(), target.user);
        let start = std::time::Instant::now();
        let out = Command::new("sh")
            .args(["-c", &command])
            .stdin(Stdio::null())
            .output()
            .context("running ssh")?;
        if !out.status.success() {
            bail!(
                "`{command}` failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        times.push(start.elapsed().as_secs_f64());
    }
    Ok(Duration::from_secs_f64(report::median(&times)))
}

/// Whether `azsync sync --help` lists `flag`.
fn azsync_has_flag(azsync: &Path, flag: &str) -> Result<bool> {
    let out = Command::new(azsync)
        .args(["sync", "--help"])
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} sync --help", azsync.display()))?;
    let help = String::from_utf8_lossy(&out.stdout);
    Ok(help
        .split(|c: char| c.is_whitespace() || c == ',')
        .any(|word| word == flag))
}

struct Bench {
    timer: Timer,
    /// In run order: the azsync variants, rsync, then `cp -a` (first sync only).
    tools: Vec<Tool>,
    work: PathBuf,
    src: PathBuf,
    /// The source as it was before the current scenario's change.
    base: PathBuf,
    /// Every tool's destination (prepared before each run).
    dst: PathBuf,
    runs: usize,
    verify: bool,
    /// A run taking longer is killed and counted as failed.
    run_timeout: Duration,
    /// The WAN proxy every SSH connection goes through (`--wan`).
    proxy: Option<Proxy>,
    /// Tools this build cannot run (the first such failure says why); skipped from then on.
    unsupported: RefCell<BTreeMap<&'static str, String>>,
}

impl Bench {
    fn is_unsupported(&self, tool: &Tool) -> bool {
        self.unsupported.borrow().contains_key(tool.name)
    }

    /// Runs one scenario: `runs` rounds of (each tool in turn), each run after `prepare` (not
    /// timed). `cp -a` takes part in the first sync only.
    fn scenario(
        &self,
        kind: ScenarioKind,
        name: &str,
        flags: Flags,
        mut prepare: impl FnMut() -> Result<()>,
    ) -> Result<Scenario> {
        eprintln!("scenario: {name}");
        let tools: Vec<&Tool> = self
            .tools
            .iter()
            .filter(|t| !t.is_cp() || kind == ScenarioKind::First)
            .collect();
        let mut scenario = Scenario {
            kind,
            name: name.to_string(),
            tools: tools
                .iter()
                .map(|t| ToolRuns::new(t.name, t.label()))
                .collect(),
            problems: Vec::new(),
        };
        for run in 1..=self.runs {
            for (tool, runs) in tools.iter().zip(&mut scenario.tools) {
                if self.is_unsupported(tool) {
                    continue;
                }
                prepare()?;
                tool.clear_remote()?;
                let log = self.work.join("logs").join(format!(
                    "{}-{}-{run}.log",
                    kind.key(),
                    tool.name.replace(' ', "")
                ));
                let argv = tool.argv(&self.src, &self.dst, flags);
                let link_before = self.proxy.as_ref().map(Proxy::stats);
                let run_result = self
                    .timer
                    .run(&argv, &log, self.run_timeout)
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
                let mut sample: Sample = tool.sample(&finished)?;
                if let (Some(proxy), Some(before)) = (&self.proxy, link_before) {
                    // The client has exited, but its last bytes to the server (the SSH
                    // disconnect) may still wait in the proxy's delay queue: count them once
                    // every connection has closed.
                    let after = proxy
                        .wait_until(Duration::from_secs(10), |s| s.closed == s.connections)
                        .unwrap_or_else(|| proxy.stats());
                    sample.link = Some(run::Wire {
                        sent: after.client_to_server - before.client_to_server,
                        received: after.server_to_client - before.server_to_client,
                    });
                }
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
                if let Some(wire) = sample.link.or(sample.wire) {
                    eprint!(
                        "  wire {} / {} B",
                        report::thousands(wire.sent),
                        report::thousands(wire.received)
                    );
                }
                if self.verify {
                    let check = verify::compare(&self.src, &self.dst, tool.is_sftp())
                        .with_context(|| format!("checking {}", self.dst.display()))?;
                    if check.ok() {
                        eprintln!("  (checked: {} entries match)", check.entries);
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
        for (tool, runs) in tools.iter().zip(&mut scenario.tools) {
            runs.unsupported = self.unsupported.borrow().get(tool.name).cloned();
        }
        Ok(scenario)
    }

    /// Before a run: an empty destination.
    fn empty_dst(&self) -> Result<()> {
        remove(&self.dst)?;
        fs::create_dir(&self.dst).with_context(|| format!("creating {}", self.dst.display()))
    }

    /// Before a run: the destination as a fresh copy of the base.
    fn dst_from_base(&self) -> Result<()> {
        remove(&self.dst)?;
        copy_tree(&self.base, &self.dst)
    }

    /// The base becomes a copy of the source as it is now.
    fn refresh_base(&self) -> Result<()> {
        remove(&self.base)?;
        copy_tree(&self.src, &self.base)
    }
}

/// The tools of SSH mode, with their wrapper scripts and remote RSS logs in `work/ssh`.
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
fn bench(opts: &Options, azsync_path: PathBuf) -> Result<bool> {
    // Before the harness's own work (the tree) raises it.
    let load_before = report::load_average();
    let rsync_path = run::which("rsync")
        .context("rsync not found on PATH: install rsync: apt-get install rsync")?;
    let cp_path = run::which("cp").context("cp not found on PATH")?;
    let timer = Timer::new()?;
    let rsync_version = Tool::rsync(rsync_path.clone()).version()?;
    let azsync_version = Tool::azsync(azsync_path.clone()).version()?;
    let openssh_version = sshd::ssh_version().unwrap_or_else(|e| format!("no OpenSSH client: {e}"));
    let mut notes = Vec::new();

    let plan = Plan::generate(opts.files, opts.seed);
    let work = prepare_workdir(&opts.dir)?;
    // The source, the base and the destination.
    let copies = 3;
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
    let sshd = match opts.target {
        Where::Local => None,
        Where::Ssh | Where::Wan { .. } => {
            let sshd = Sshd::start(&work.join("sshd"), &work.join("logs").join("sshd.log"))?;
            eprintln!(
                "sshd listening on 127.0.0.1:{} ({})",
                sshd.target.port, sshd.version
            );
            Some(sshd)
        }
    };
    let mut proxy = None;
    let mut floor = None;
    let (mut tools, mode) = match (opts.target, &sshd) {
        (Where::Wan { rtt_ms, mbit }, Some(sshd)) => {
            let config = wan::config(rtt_ms, mbit);
            eprintln!("measuring the simulated link ({rtt_ms} ms, {mbit} Mbit/s)");
            let check = wan::check(&config)?;
            eprintln!(
                "  round trip {:.1} ms, {:.1} Mbit/s",
                check.rtt.as_secs_f64() * 1e3,
                check.mbit_per_sec()
            );
            let sshd_addr = ([127, 0, 0, 1], sshd.target.port).into();
            let p = Proxy::start(sshd_addr, config).context("starting the WAN proxy")?;
            let target =
                sshd.through_proxy(p.port(), &work.join("sshd").join("known_hosts_wan"))?;
            eprintln!("WAN proxy on 127.0.0.1:{} → sshd", p.port());
            floor = Some(ssh_floor(&target)?);
            proxy = Some(p);
            let mut tools = ssh_tools(&target, &azsync_path, &rsync_path, &opts.variants, &work)?;
            let azsync_compress = azsync_has_flag(&azsync_path, "--compress")?;
            if !azsync_compress {
                notes.push(
                    "this azsync build has no `--compress`: azsync ran uncompressed, rsync with \
                     `-z`"
                        .to_string(),
                );
            }
            for tool in &mut tools {
                tool.compress = tool.is_rsync() || azsync_compress;
            }
            (
                tools,
                Mode::Wan {
                    rtt_ms,
                    mbit,
                    check,
                },
            )
        }
        (Where::Ssh, Some(sshd)) => {
            floor = Some(ssh_floor(&sshd.target)?);
            (
                ssh_tools(
                    &sshd.target,
                    &azsync_path,
                    &rsync_path,
                    &opts.variants,
                    &work,
                )?,
                Mode::Ssh,
            )
        }
        _ => (
            vec![Tool::azsync(azsync_path), Tool::rsync(rsync_path)],
            Mode::Local,
        ),
    };
    // The floor of a first sync on this disk; on a WAN the link is the floor instead.
    if !matches!(mode, Mode::Wan { .. }) {
        tools.push(Tool::cp(cp_path));
    }

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
            // its path; the scenarios' flags come on top.
            let dst = match mode {
                Mode::Local => "DST",
                _ => "/DST",
            };
            let argv = t.argv(Path::new("SRC"), Path::new(dst), Flags::default());
            (
                t.name.to_string(),
                format!("{} {}", t.program_name(), run::shell_words(&argv[1..])),
            )
        })
        .collect();
    let (cpus, cpu_model, mem_total, kernel) = report::machine();
    let mut setup = Setup {
        cpus,
        cpu_model,
        mem_total,
        kernel,
        rsync_version,
        azsync_version,
        openssh_version,
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
        notes,
        load: (load_before, String::new()),
        ssh_floor: floor,
    };

    let bench = Bench {
        timer,
        tools,
        base: work.join("base"),
        dst: work.join("dst"),
        work: work.clone(),
        src: src.clone(),
        runs: opts.runs,
        verify: opts.verify,
        run_timeout: opts.run_timeout,
        proxy,
        unsupported: RefCell::new(BTreeMap::new()),
    };
    let mut scenarios = Vec::new();
    // Whether the base is a copy of the source as it is now.
    let mut base_is_src = false;
    let fresh_base = |bench: &Bench, base_is_src: &mut bool| -> Result<()> {
        if !*base_is_src {
            bench.refresh_base()?;
            *base_is_src = true;
        }
        Ok(())
    };
    for &kind in &opts.scenarios {
        let scenario = match kind {
            ScenarioKind::First => bench.scenario(
                kind,
                "first sync into an empty destination",
                Flags::default(),
                || bench.empty_dst(),
            )?,
            ScenarioKind::Noop => {
                fresh_base(&bench, &mut base_is_src)?;
                bench.scenario(kind, "no-op re-sync", Flags::default(), || {
                    bench.dst_from_base()
                })?
            }
            ScenarioKind::Checksum => {
                fresh_base(&bench, &mut base_is_src)?;
                let flags = Flags {
                    checksum: true,
                    ..Flags::default()
                };
                bench.scenario(kind, "`--checksum` no-op re-sync", flags, || {
                    bench.dst_from_base()
                })?
            }
            ScenarioKind::Changed => {
                fresh_base(&bench, &mut base_is_src)?;
                let change = plan.change_some(&src, opts.seed)?;
                base_is_src = false;
                eprintln!(
                    "changed {} source files ({} bytes after the change)",
                    change.files,
                    report::thousands(change.bytes)
                );
                let name = format!(
                    "1% of files changed ({})",
                    report::thousands(change.files as u64)
                );
                bench.scenario(kind, &name, Flags::default(), || bench.dst_from_base())?
            }
            ScenarioKind::BigEdit => {
                fresh_base(&bench, &mut base_is_src)?;
                let edit = plan.edit_big(&src, opts.seed)?;
                base_is_src = false;
                eprintln!(
                    "edited {} ({} bytes in {} places)",
                    edit.path.display(),
                    report::thousands(edit.bytes),
                    edit.places
                );
                let name = format!(
                    "one {:.0} MiB file, {:.1} KiB edited in {} places",
                    edit.size as f64 / 1048576.0,
                    edit.bytes as f64 / 1024.0,
                    edit.places
                );
                bench.scenario(kind, &name, Flags::default(), || bench.dst_from_base())?
            }
            ScenarioKind::Delete => {
                fresh_base(&bench, &mut base_is_src)?;
                let deleted = plan.delete_some(&src, opts.seed)?;
                base_is_src = false;
                eprintln!("deleted {deleted} source files");
                let name = format!(
                    "1% of files deleted ({}), `--delete`",
                    report::thousands(deleted as u64)
                );
                let flags = Flags {
                    delete: true,
                    ..Flags::default()
                };
                bench.scenario(kind, &name, flags, || bench.dst_from_base())?
            }
        };
        scenarios.push(scenario);
    }
    drop(bench.proxy);
    drop(sshd);

    setup.load.1 = report::load_average();
    let md = report::markdown(&setup, &scenarios);
    println!("{md}");
    if let Some(path) = &opts.out {
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
        for tree in [&bench.dst, &bench.base, &src] {
            remove(tree)?;
        }
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

    #[test]
    fn finds_flags_in_help() -> Result<()> {
        let dir = std::env::temp_dir().join(format!("azsync-bench-help-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let fake = dir.join("azsync");
        fs::write(
            &fake,
            "#!/bin/sh\necho '  -z, --compress\n      --compress-level <N>\n      --delete'\n",
        )?;
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&fake, fs::Permissions::from_mode(0o755))?;
        assert!(azsync_has_flag(&fake, "--compress")?);
        assert!(azsync_has_flag(&fake, "--delete")?);
        assert!(!azsync_has_flag(&fake, "--checksum")?);
        fs::remove_dir_all(&dir)?;
        Ok(())
    }
}
