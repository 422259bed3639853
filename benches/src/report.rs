//! The machine description and the Markdown report.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::run::Sample;

/// Where and with what the benchmark ran.
#[derive(Debug, Clone)]
pub struct Setup {
    pub cpus: usize,
    pub cpu_model: String,
    pub mem_total: String,
    pub kernel: String,
    pub rsync_version: String,
    pub azsync_version: String,
    pub date: String,
    pub dir: String,
    pub fs_type: String,
    pub seed: u64,
    pub runs: usize,
    pub files: usize,
    pub dirs: usize,
    pub symlinks: usize,
    pub total_bytes: u64,
    /// Where the destination is.
    pub mode: Mode,
    /// Each tool's name and command line, in the order of the tools.
    pub commands: Vec<(String, String)>,
}

/// Where the destination is.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A local directory.
    Local,
    /// A directory on the same machine reached through a loopback OpenSSH server.
    Ssh {
        /// `ssh -V` (the server is the sshd of the same OpenSSH).
        openssh: String,
    },
}

/// One tool's runs of one scenario.
#[derive(Debug, Clone)]
pub struct ToolRuns {
    pub tool: String,
    /// Successful runs, in run order.
    pub samples: Vec<Sample>,
    /// Runs that failed (not in the samples).
    pub failed: usize,
    /// Why this build cannot run this tool at all (its runs were skipped), e.g. the built-in
    /// SSH client of a build that lacks it.
    pub unsupported: Option<String>,
}

impl ToolRuns {
    pub fn new(tool: &str) -> ToolRuns {
        ToolRuns {
            tool: tool.to_string(),
            samples: Vec::new(),
            failed: 0,
            unsupported: None,
        }
    }
}

/// The samples of one scenario, per tool; the last tool is rsync, the baseline of the ratios.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub tools: Vec<ToolRuns>,
    /// Failed runs and problems found when checking the destinations, if any (shown under the table).
    pub problems: Vec<String>,
}

impl Scenario {
    fn baseline(&self) -> Option<&ToolRuns> {
        self.tools.iter().find(|t| t.tool == "rsync")
    }

    /// The flags after the scenario's name: failed runs, differing destinations.
    fn flag(&self, runs: usize) -> String {
        let mut flags = Vec::new();
        for t in &self.tools {
            if t.failed > 0 {
                flags.push(format!("{} failed {} of {runs} runs", t.tool, t.failed));
            }
        }
        let failed: usize = self.tools.iter().map(|t| t.failed).sum();
        if self.problems.len() > failed {
            flags.push("destination differs".to_string());
        }
        if flags.is_empty() {
            String::new()
        } else {
            format!(" (**{}**)", flags.join(", "))
        }
    }
}

/// Facts about this machine that no flag changes.
pub fn machine() -> (usize, String, String, String) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu_model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")?
                .split_once(':')
                .map(|(_, v)| v.trim())
        })
        .unwrap_or("unknown CPU")
        .to_string();
    let meminfo = fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let mem_total = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or("unknown".to_string(), |kib| {
            format!("{:.1} GiB", kib as f64 / 1048576.0)
        });
    let kernel = command_line("uname", &["-r"])
        .or_else(|| fs::read_to_string("/proc/sys/kernel/osrelease").ok())
        .map_or("unknown".to_string(), |s| s.trim().to_string());
    (cpus, cpu_model, mem_total, kernel)
}

/// The file system type of `dir` (`tmpfs`, `ext2/ext3`, ...), from `stat -f`.
pub fn fs_type(dir: &Path) -> String {
    command_line("stat", &["-f", "-c", "%T", &dir.to_string_lossy()])
        .map_or("unknown".into(), |s| s.trim().to_string())
}

fn command_line(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Now, as `YYYY-MM-DD HH:MM UTC`.
pub fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// The median of `values` (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

fn median_secs(samples: &[Sample]) -> f64 {
    median(
        &samples
            .iter()
            .map(|s| s.wall.as_secs_f64())
            .collect::<Vec<_>>(),
    )
}

/// The largest peak RSS of `samples` in MiB; NaN if there are none.
fn peak_mib(samples: &[Sample]) -> f64 {
    samples
        .iter()
        .map(|s| s.max_rss_kib)
        .max()
        .map_or(f64::NAN, |kib| kib as f64 / 1024.0)
}

/// The largest remote peak RSS of `samples` in MiB; NaN if none reported one.
fn remote_peak_mib(samples: &[Sample]) -> f64 {
    samples
        .iter()
        .filter_map(|s| s.remote_rss_kib)
        .max()
        .map_or(f64::NAN, |kib| kib as f64 / 1024.0)
}

/// The median bytes on the wire (sent + received) of `samples` in MiB; NaN if none reported.
fn median_wire_mib(samples: &[Sample]) -> f64 {
    let totals: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.wire)
        .map(|w| w.total() as f64 / 1048576.0)
        .collect();
    median(&totals)
}

fn secs(d: Duration) -> String {
    format!("{:.3}", d.as_secs_f64())
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let head = match digits.len() % 3 {
        0 => 3.min(digits.len()),
        rest => rest,
    };
    let mut out = digits[..head].to_string();
    for group in digits.as_bytes()[head..].chunks(3) {
        out.push(',');
        out.push_str(std::str::from_utf8(group).unwrap_or_default());
    }
    out
}

/// A table cell of one tool: its value, or why there is none.
fn tool_cell(runs: &ToolRuns, value: f64, digits: usize) -> String {
    if runs.unsupported.is_some() {
        "unsupported".to_string()
    } else if value.is_finite() {
        format!("{value:.digits$}")
    } else if runs.samples.is_empty() {
        "failed".to_string()
    } else {
        "n/a".to_string()
    }
}

/// The whole report as Markdown.
pub fn markdown(setup: &Setup, scenarios: &[Scenario]) -> String {
    let mut md = String::new();
    let s = setup;
    let where_to = match &s.mode {
        Mode::Local => "local destination".to_string(),
        Mode::Ssh { .. } => "over SSH to a loopback OpenSSH server".to_string(),
    };
    let _ = writeln!(md, "## azsync vs rsync, end to end ({where_to})\n");
    let _ = writeln!(
        md,
        "- machine: {} CPUs ({}), {} RAM, kernel {}",
        s.cpus, s.cpu_model, s.mem_total, s.kernel
    );
    let _ = writeln!(md, "- rsync: `{}`", s.rsync_version);
    let _ = writeln!(md, "- azsync: `{}`", s.azsync_version);
    if let Mode::Ssh { openssh } = &s.mode {
        let _ = writeln!(
            md,
            "- mode: ssh: OpenSSH `{openssh}`, sshd on 127.0.0.1 (client, server and both trees \
             on this machine, so client and server share its CPUs)"
        );
    }
    let _ = writeln!(md, "- date: {}", s.date);
    let _ = writeln!(
        md,
        "- tree: {} files, {} bytes ({:.1} MiB), plus {} directories and {} symlinks; seed {}; \
         in `{}` ({})",
        thousands(s.files as u64),
        thousands(s.total_bytes),
        s.total_bytes as f64 / 1048576.0,
        thousands(s.dirs as u64),
        thousands(s.symlinks as u64),
        s.seed,
        s.dir,
        s.fs_type
    );
    match &s.mode {
        Mode::Local => {
            let cmds: Vec<_> = s.commands.iter().map(|(_, c)| format!("`{c}`")).collect();
            let _ = writeln!(md, "- commands: {}", cmds.join(" and "));
            let _ = writeln!(
                md,
                "- method: {} run(s) per tool per scenario, alternating azsync and rsync; median \
                 wall time; peak RSS is the largest `ru_maxrss` over the runs, as GNU time reports \
                 it: the largest single process of the tool's process tree (azsync and its agent; \
                 rsync's sender, generator and receiver), not their sum. MB = MiB.\n",
                s.runs
            );
            local_table(&mut md, scenarios, s.runs);
        }
        Mode::Ssh { .. } => {
            let _ = writeln!(md, "- commands:");
            for (tool, cmd) in &s.commands {
                let _ = writeln!(md, "  - {tool}: `{cmd}`");
            }
            let _ = writeln!(
                md,
                "- method: {} run(s) per tool per scenario, alternating the tools; median wall \
                 time of the client. Peak RSS is the largest `ru_maxrss` over the runs, as GNU \
                 time reports it (the largest single process, not a sum): local = around the \
                 client, with its `ssh` child for azsync (--rsh) and rsync, so that where the ssh \
                 child is the larger process the figure is ssh's and the client's own is at most \
                 that; remote = around what \
                 sshd starts (the azsync agent, through an `--agent-path` wrapper, so nothing is \
                 deployed; rsync's server and its receiver, through `--rsync-path`). Wire = median \
                 bytes sent + received as each tool counts them (azsync `--json` `bytes_sent` + \
                 `bytes_received`; rsync `--stats` total bytes sent + received): the payload \
                 inside SSH, before encryption. MB = MiB.\n",
                s.runs
            );
            ssh_table(&mut md, scenarios, s.runs);
        }
    }
    let _ = writeln!(md, "Every run (wall seconds):\n");
    for sc in scenarios {
        let parts: Vec<String> = sc
            .tools
            .iter()
            .map(|t| {
                if t.unsupported.is_some() {
                    return format!("{} unsupported", t.tool);
                }
                let mut runs: Vec<_> = t.samples.iter().map(|x| secs(x.wall)).collect();
                runs.extend(std::iter::repeat_n("failed".to_string(), t.failed));
                format!("{} {}", t.tool, runs.join(", "))
            })
            .collect();
        let _ = writeln!(md, "- {}: {}", sc.name, parts.join("; "));
    }
    if matches!(s.mode, Mode::Ssh { .. }) {
        let _ = writeln!(
            md,
            "\nEvery run (bytes on the wire, sent / received; local / remote peak RSS MiB):\n"
        );
        for sc in scenarios {
            let parts: Vec<String> = sc
                .tools
                .iter()
                .filter(|t| t.unsupported.is_none())
                .map(|t| {
                    let runs: Vec<_> = t
                        .samples
                        .iter()
                        .map(|x| {
                            let wire = x.wire.map_or("n/a".to_string(), |w| {
                                format!("{} / {}", thousands(w.sent), thousands(w.received))
                            });
                            let remote = x
                                .remote_rss_kib
                                .map_or("n/a".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
                            format!("{wire} ({:.1} / {remote})", x.max_rss_kib as f64 / 1024.0)
                        })
                        .collect();
                    format!("{} {}", t.tool, runs.join(", "))
                })
                .collect();
            let _ = writeln!(md, "- {}: {}", sc.name, parts.join("; "));
        }
    }
    let unsupported: Vec<(&str, &str)> = {
        let mut seen: Vec<(&str, &str)> = Vec::new();
        for t in scenarios.iter().flat_map(|sc| &sc.tools) {
            if let Some(why) = &t.unsupported {
                if !seen.iter().any(|(name, _)| *name == t.tool) {
                    seen.push((&t.tool, why));
                }
            }
        }
        seen
    };
    for (tool, why) in &unsupported {
        let _ = writeln!(
            md,
            "\n{tool}: not supported by this azsync build, not run (`{}`).",
            why.trim()
        );
    }
    let problems: Vec<_> = scenarios.iter().flat_map(|sc| &sc.problems).collect();
    if problems.is_empty() {
        let _ = writeln!(
            md,
            "\nAfter every run the destination was checked against the source (types, contents, \
             sizes, modes, mtimes, link targets, no extra entries): all matched."
        );
    } else {
        let _ = writeln!(md, "\n**Failed runs and destination differences:**\n");
        for p in problems {
            let _ = writeln!(md, "- {p}");
        }
    }
    md
}

/// `| scenario | azsync median s | rsync median s | ratio | azsync peak RSS MB | rsync peak RSS MB |`
fn local_table(md: &mut String, scenarios: &[Scenario], runs: usize) {
    let Some(first) = scenarios.first() else {
        return;
    };
    let names: Vec<&str> = first.tools.iter().map(|t| t.tool.as_str()).collect();
    let mut header = "| scenario |".to_string();
    for name in &names {
        let _ = write!(header, " {name} median s |");
    }
    header.push_str(" ratio |");
    for name in &names {
        let _ = write!(header, " {name} peak RSS MB |");
    }
    let _ = writeln!(md, "{header}");
    let _ = writeln!(md, "| --- |{}", " ---: |".repeat(2 * names.len() + 1));
    for sc in scenarios {
        let medians: Vec<f64> = sc.tools.iter().map(|t| median_secs(&t.samples)).collect();
        let mut row = format!("| {}{} |", sc.name, sc.flag(runs));
        for (t, m) in sc.tools.iter().zip(&medians) {
            let _ = write!(row, " {} |", tool_cell(t, *m, 3));
        }
        let base = sc.baseline().map_or(f64::NAN, |b| median_secs(&b.samples));
        let ratio = match medians.first() {
            Some(a) if a.is_finite() && base.is_finite() => format!("{:.2}", a / base),
            _ => "n/a".to_string(),
        };
        let _ = write!(row, " {ratio} |");
        for t in &sc.tools {
            let _ = write!(row, " {} |", tool_cell(t, peak_mib(&t.samples), 1));
        }
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(
        md,
        "\nratio = azsync / rsync median wall time; below 1 means azsync is faster.\n"
    );
}

/// One row per tool per scenario.
fn ssh_table(md: &mut String, scenarios: &[Scenario], runs: usize) {
    let _ = writeln!(
        md,
        "| scenario | tool | median s | ratio to rsync | local peak RSS MB | remote peak RSS MB | \
         wire MB |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for sc in scenarios {
        let base = sc.baseline().map_or(f64::NAN, |b| median_secs(&b.samples));
        for (i, t) in sc.tools.iter().enumerate() {
            let scenario = if i == 0 {
                format!("{}{}", sc.name, sc.flag(runs))
            } else {
                String::new()
            };
            let m = median_secs(&t.samples);
            let ratio = if t.tool == "rsync" {
                "1.00".to_string()
            } else if t.unsupported.is_none() && m.is_finite() && base.is_finite() {
                format!("{:.2}", m / base)
            } else {
                "n/a".to_string()
            };
            let _ = writeln!(
                md,
                "| {scenario} | {} | {} | {ratio} | {} | {} | {} |",
                t.tool,
                tool_cell(t, m, 3),
                tool_cell(t, peak_mib(&t.samples), 1),
                tool_cell(t, remote_peak_mib(&t.samples), 1),
                tool_cell(t, median_wire_mib(&t.samples), 2),
            );
        }
    }
    let _ = writeln!(
        md,
        "\nratio = the tool's median wall time / rsync's; below 1 means faster than rsync.\n"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    fn setup(mode: Mode) -> Setup {
        Setup {
            cpus: 2,
            cpu_model: "cpu".into(),
            mem_total: "1 GiB".into(),
            kernel: "k".into(),
            rsync_version: "rsync 3".into(),
            azsync_version: "azsync 0.1.0".into(),
            date: utc_now(),
            dir: "/dev/shm/x".into(),
            fs_type: "tmpfs".into(),
            seed: 1,
            runs: 2,
            files: 10,
            dirs: 1,
            symlinks: 0,
            total_bytes: 1000,
            mode,
            commands: vec![("azsync".into(), "a".into()), ("rsync".into(), "r".into())],
        }
    }

    fn sample(ms: u64, kib: u64) -> Sample {
        Sample {
            wall: Duration::from_millis(ms),
            max_rss_kib: kib,
            remote_rss_kib: None,
            wire: None,
        }
    }

    fn runs(tool: &str, samples: Vec<Sample>) -> ToolRuns {
        ToolRuns {
            samples,
            ..ToolRuns::new(tool)
        }
    }

    #[test]
    fn table_marks_failures() {
        let setup = setup(Mode::Local);
        let ok = Scenario {
            name: "ok".into(),
            tools: vec![
                runs("azsync", vec![sample(100, 2048), sample(300, 1024)]),
                runs("rsync", vec![sample(400, 4096), sample(400, 4096)]),
            ],
            problems: Vec::new(),
        };
        let md = markdown(&setup, std::slice::from_ref(&ok));
        assert!(md.contains("(local destination)"), "{md}");
        assert!(
            md.contains(
                "| scenario | azsync median s | rsync median s | ratio | azsync peak RSS MB | \
                 rsync peak RSS MB |\n| --- | ---: | ---: | ---: | ---: | ---: |\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("| ok | 0.200 | 0.400 | 0.50 | 2.0 | 4.0 |"),
            "{md}"
        );
        assert!(md.contains("- commands: `a` and `r`"), "{md}");
        assert!(md.contains("all matched"), "{md}");
        let mut failed = ok.clone();
        failed.name = "bad".into();
        failed.tools[0] = ToolRuns {
            failed: 2,
            ..ToolRuns::new("azsync")
        };
        failed.problems = vec!["x".into(), "y".into()];
        let md = markdown(&setup, &[failed]);
        assert!(
            md.contains(
                "| bad (**azsync failed 2 of 2 runs**) | failed | 0.400 | n/a | failed | 4.0 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("azsync failed, failed; rsync 0.400, 0.400"),
            "{md}"
        );
    }

    #[test]
    fn ssh_table_has_both_sides_and_the_wire() {
        let mut setup = setup(Mode::Ssh {
            openssh: "OpenSSH_9.6p1".into(),
        });
        setup
            .commands
            .insert(1, ("azsync-native".into(), "n".into()));
        let remote = |ms, kib, remote_kib, sent, received| Sample {
            remote_rss_kib: Some(remote_kib),
            wire: Some(crate::run::Wire { sent, received }),
            ..sample(ms, kib)
        };
        let sc = Scenario {
            name: "first".into(),
            tools: vec![
                runs(
                    "azsync",
                    vec![
                        remote(100, 2048, 3072, 1 << 20, 1 << 19),
                        remote(300, 1024, 1024, 1 << 20, 1 << 19),
                    ],
                ),
                ToolRuns {
                    unsupported: Some("the built-in SSH client is not available".into()),
                    ..ToolRuns::new("azsync-native")
                },
                runs(
                    "rsync",
                    vec![
                        remote(400, 4096, 5120, 3 << 20, 0),
                        remote(400, 4096, 5120, 3 << 20, 0),
                    ],
                ),
            ],
            problems: Vec::new(),
        };
        let md = markdown(&setup, &[sc]);
        assert!(
            md.contains("(over SSH to a loopback OpenSSH server)"),
            "{md}"
        );
        assert!(md.contains("OpenSSH `OpenSSH_9.6p1`"), "{md}");
        assert!(md.contains("  - azsync-native: `n`"), "{md}");
        assert!(
            md.contains("| first | azsync | 0.200 | 0.50 | 2.0 | 3.0 | 1.50 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "|  | azsync-native | unsupported | n/a | unsupported | unsupported | unsupported |"
            ),
            "{md}"
        );
        assert!(
            md.contains("|  | rsync | 0.400 | 1.00 | 4.0 | 5.0 | 3.00 |"),
            "{md}"
        );
        assert!(md.contains("azsync-native unsupported"), "{md}");
        assert!(md.contains("1,048,576 / 524,288 (2.0 / 3.0)"), "{md}");
        assert!(
            md.contains("azsync-native: not supported by this azsync build"),
            "{md}"
        );
        assert!(md.contains("all matched"), "{md}");
    }

    #[test]
    fn formats() {
        assert_eq!(thousands(50_000), "50,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(100_000), "100,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
        let now = utc_now();
        assert_eq!(now.len(), "2025-01-01 00:00 UTC".len(), "{now}");
        assert!(now.starts_with("20"), "{now}");
    }
}
