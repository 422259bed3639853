//! The machine description and the Markdown report.
//!
//! The headline table has one row per scenario: each tool's median wall time, each azsync
//! variant's ratio to rsync, the issue's target for that ratio, peak RSS and bytes on the wire.
//! A table with one row per tool per scenario and every run's figures follow it.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::args::ScenarioKind;
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
    pub openssh_version: String,
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
    /// Anything else a reader must know (e.g. a flag this build lacks), one line each.
    pub notes: Vec<String>,
    /// `/proc/loadavg`'s 1-, 5- and 15-minute load before the scenarios and after them: other
    /// work on the machine shows up here.
    pub load: (String, String),
    /// Over SSH: the median time of `ssh HOST true` over the same path, the floor of any run.
    pub ssh_floor: Option<Duration>,
}

/// The 1-, 5- and 15-minute load averages, from `/proc/loadavg`.
pub fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_string())
}

/// Where the destination is.
#[derive(Debug, Clone)]
pub enum Mode {
    /// A local directory.
    Local,
    /// A directory on the same machine reached through a loopback OpenSSH server.
    Ssh,
    /// As `Ssh`, through the simulated WAN.
    Wan {
        rtt_ms: u64,
        mbit: u64,
        /// What the link measured before the scenarios.
        check: LinkCheck,
    },
}

/// The simulated link, measured through a proxy of the same settings.
#[derive(Debug, Clone, Copy)]
pub struct LinkCheck {
    /// Median of a few 1-byte round trips.
    pub rtt: Duration,
    /// Bytes pushed one way to measure throughput.
    pub bytes: u64,
    /// How long they took, from the first write to the receiver's last read.
    pub elapsed: Duration,
}

impl LinkCheck {
    pub fn mbit_per_sec(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64() / 1e6
    }
}

/// One tool's runs of one scenario.
#[derive(Debug, Clone)]
pub struct ToolRuns {
    /// The tool's name in logs ("azsync-native", "rsync", "cp -a").
    pub tool: String,
    /// Its column header ("built-in", "rsync", ...).
    pub label: String,
    /// Successful runs, in run order.
    pub samples: Vec<Sample>,
    /// Runs that failed (not in the samples).
    pub failed: usize,
    /// Why this build cannot run this tool at all (its runs were skipped), e.g. the built-in
    /// SSH client of a build that lacks it.
    pub unsupported: Option<String>,
}

impl ToolRuns {
    pub fn new(tool: &str, label: &str) -> ToolRuns {
        ToolRuns {
            tool: tool.to_string(),
            label: label.to_string(),
            samples: Vec::new(),
            failed: 0,
            unsupported: None,
        }
    }

    fn is_rsync(&self) -> bool {
        self.tool == "rsync"
    }

    fn is_cp(&self) -> bool {
        self.tool == "cp -a"
    }

    fn is_azsync(&self) -> bool {
        !self.is_rsync() && !self.is_cp()
    }

    fn median(&self) -> f64 {
        median_secs(&self.samples)
    }
}

/// The samples of one scenario, per tool (the azsync variants, then rsync, then `cp -a` for the
/// first sync).
#[derive(Debug, Clone)]
pub struct Scenario {
    pub kind: ScenarioKind,
    pub name: String,
    pub tools: Vec<ToolRuns>,
    /// Failed runs and problems found when checking the destinations, if any (shown under the
    /// table).
    pub problems: Vec<String>,
}

impl Scenario {
    fn rsync(&self) -> Option<&ToolRuns> {
        self.tools.iter().find(|t| t.is_rsync())
    }

    fn cp(&self) -> Option<&ToolRuns> {
        self.tools.iter().find(|t| t.is_cp())
    }

    /// `tool`'s median over rsync's, formatted; "n/a" without both.
    fn ratio(&self, tool: &ToolRuns) -> Option<f64> {
        let base = self.rsync()?.median();
        let m = tool.median();
        (tool.unsupported.is_none() && m.is_finite() && base.is_finite() && base > 0.0)
            .then(|| m / base)
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

/// The issue's target for the ratio azsync / rsync of a scenario, if it sets one.
pub fn target(kind: ScenarioKind, mode: &Mode) -> Option<f64> {
    match (mode, kind) {
        (Mode::Wan { .. }, ScenarioKind::First | ScenarioKind::Noop) => Some(0.5),
        (Mode::Wan { .. }, _) => None,
        (_, ScenarioKind::First | ScenarioKind::Changed | ScenarioKind::Checksum) => Some(0.5),
        (_, ScenarioKind::Noop) => Some(0.4),
        (_, ScenarioKind::BigEdit | ScenarioKind::Delete) => None,
    }
}

/// The issue's target for azsync's first sync over `cp -a` of the same tree.
pub const CP_TARGET: f64 = 1.2;

fn target_cell(ratio: Option<f64>, target: Option<f64>) -> String {
    match (ratio, target) {
        (_, None) => "–".to_string(),
        (Some(r), Some(t)) if r <= t => format!("≤ {t:.2} met"),
        (Some(_), Some(t)) => format!("≤ {t:.2} **missed**"),
        (None, Some(t)) => format!("≤ {t:.2}"),
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

/// The median bytes on the wire (sent + received) of `samples` in MiB: on the proxied link
/// when there is one, else as the tool counts them; NaN if none reported.
fn median_wire_mib(samples: &[Sample]) -> f64 {
    let totals: Vec<f64> = samples
        .iter()
        .filter_map(|s| s.link.or(s.wire))
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

fn mb_cell(runs: &ToolRuns, mib: f64) -> String {
    let cell = tool_cell(runs, mib, 1);
    if mib.is_finite() && runs.unsupported.is_none() {
        format!("{cell} MB")
    } else {
        cell
    }
}

fn ratio_cell(ratio: Option<f64>) -> String {
    ratio.map_or("n/a".to_string(), |r| format!("{r:.2}"))
}

/// The whole report as Markdown.
pub fn markdown(setup: &Setup, scenarios: &[Scenario]) -> String {
    let mut md = String::new();
    let s = setup;
    let where_to = match &s.mode {
        Mode::Local => "local destination".to_string(),
        Mode::Ssh => "over SSH to a loopback OpenSSH server".to_string(),
        Mode::Wan { rtt_ms, mbit, .. } => format!(
            "over SSH through a simulated WAN: {rtt_ms} ms round trip, {mbit} Mbit/s each way"
        ),
    };
    let _ = writeln!(md, "## azsync vs rsync, end to end ({where_to})\n");
    let _ = writeln!(
        md,
        "- machine: {} CPUs ({}), {} RAM, kernel {}",
        s.cpus, s.cpu_model, s.mem_total, s.kernel
    );
    let _ = writeln!(
        md,
        "- versions: `{}`; `{}`; `{}`",
        s.azsync_version, s.rsync_version, s.openssh_version
    );
    let _ = writeln!(md, "- date: {}", s.date);
    let _ = writeln!(
        md,
        "- load average (1, 5, 15 min): {} before the benchmark, {} after it (on {} CPUs; anything \
         near or above the CPU count means other work shared the machine)",
        s.load.0, s.load.1, s.cpus
    );
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
        Mode::Local => {}
        Mode::Ssh => {
            let _ = writeln!(
                md,
                "- sshd on 127.0.0.1: client, server and both trees on this machine, sharing its \
                 CPUs (this measures CPU cost and round trips, not a network)"
            );
        }
        Mode::Wan { check, .. } => {
            let _ = writeln!(
                md,
                "- link: the harness's TCP proxy between the client and sshd on 127.0.0.1 \
                 (delay each way, token-bucket cap each way); measured before the scenarios: \
                 round trip {:.1} ms, {:.1} Mbit/s one way ({} MiB in {:.2} s)",
                check.rtt.as_secs_f64() * 1e3,
                check.mbit_per_sec(),
                check.bytes >> 20,
                check.elapsed.as_secs_f64()
            );
        }
    }
    let _ = writeln!(md, "- commands:");
    for (tool, cmd) in &s.commands {
        let _ = writeln!(md, "  - {tool}: `{cmd}`");
    }
    let wire = match s.mode {
        Mode::Local => "",
        Mode::Ssh => {
            " Wire = median bytes sent + received as each tool counts them (azsync `--json` \
             `bytes_sent` + `bytes_received`; rsync `--stats` total bytes sent + received): the \
             payload inside SSH, before encryption."
        }
        Mode::Wan { .. } => {
            " Wire = median bytes through the proxy, both ways: the TCP payload, SSH encryption \
             and framing included."
        }
    };
    let rss = match s.mode {
        Mode::Local => {
            "the largest single process of the tool's tree (azsync and its agent; rsync's \
             sender, generator and receiver), not their sum"
        }
        _ => {
            "the largest single process, not a sum: local = around the client, with its `ssh` \
             child for `--rsh` and rsync, so where ssh is the larger process the figure is ssh's; \
             remote = around what sshd starts (the azsync agent through an `--agent-path` \
             wrapper, so nothing is deployed; rsync's server and its receiver through \
             `--rsync-path`; none for `--sftp`, whose remote side is sshd's SFTP server)"
        }
    };
    let _ = writeln!(
        md,
        "- method: {} run(s) per tool per scenario, alternating the tools in the order of the \
         columns; every run but a first sync starts from a fresh `cp -a` copy of the source as it \
         was before the scenario's change (not timed); median wall time; ratio = azsync / rsync \
         median (below 1: azsync is faster); target = the issue's target for the first azsync \
         column. Peak RSS is the largest `ru_maxrss` over the runs, as GNU time reports it: \
         {rss}.{wire} MB = MiB.",
        s.runs
    );
    if let Some(floor) = s.ssh_floor {
        let _ = writeln!(
            md,
            "- SSH floor: `ssh HOST true` over the same path takes {:.3} s (median of 3): what \
             any SSH-based tool pays for connection, key exchange, authentication and a session \
             before it syncs anything",
            floor.as_secs_f64()
        );
    }
    for note in &s.notes {
        let _ = writeln!(md, "- note: {note}");
    }
    let _ = writeln!(md);
    headline(&mut md, s, scenarios);
    cp_line(&mut md, scenarios);
    if !matches!(s.mode, Mode::Local) {
        per_tool_table(&mut md, scenarios, s.runs);
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
    if !matches!(s.mode, Mode::Local) {
        let link = matches!(s.mode, Mode::Wan { .. });
        let _ = writeln!(
            md,
            "\nEvery run (bytes sent / received as the tool counts them{}; local / remote peak \
             RSS MiB):\n",
            if link { "; on the link, up / down" } else { "" }
        );
        for sc in scenarios {
            let parts: Vec<String> = sc
                .tools
                .iter()
                .filter(|t| t.unsupported.is_none() && !t.is_cp())
                .map(|t| {
                    let runs: Vec<_> = t.samples.iter().map(|x| run_detail(x, link)).collect();
                    format!("{} {}", t.tool, runs.join(", "))
                })
                .collect();
            let _ = writeln!(md, "- {}: {}", sc.name, parts.join("; "));
        }
    }
    let mut seen: Vec<&str> = Vec::new();
    for t in scenarios.iter().flat_map(|sc| &sc.tools) {
        if let Some(why) = &t.unsupported {
            if !seen.contains(&t.tool.as_str()) {
                seen.push(&t.tool);
                let _ = writeln!(
                    md,
                    "\n{}: not supported by this azsync build, not run (`{}`).",
                    t.tool,
                    why.trim()
                );
            }
        }
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

fn run_detail(x: &Sample, link: bool) -> String {
    let wire = x.wire.map_or("n/a".to_string(), |w| {
        format!("{} / {}", thousands(w.sent), thousands(w.received))
    });
    let on_link = match (link, x.link) {
        (true, Some(l)) => format!("; link {} / {}", thousands(l.sent), thousands(l.received)),
        _ => String::new(),
    };
    let remote = x
        .remote_rss_kib
        .map_or("n/a".to_string(), |k| format!("{:.1}", k as f64 / 1024.0));
    format!(
        "{wire}{on_link} ({:.1} / {remote})",
        x.max_rss_kib as f64 / 1024.0
    )
}

/// One row per scenario, in the README's shape:
/// local: `| scenario | azsync s | rsync s | ratio | target | azsync peak RSS | rsync peak RSS |`;
/// over SSH: each tool's time, each azsync variant's ratio, the target, then local / remote
/// peak RSS and wire MB of the first azsync variant and of rsync.
fn headline(md: &mut String, setup: &Setup, scenarios: &[Scenario]) {
    let Some(first) = scenarios.first() else {
        return;
    };
    // The columns: every tool but cp -a (it has its own line), in order.
    let tools: Vec<&ToolRuns> = first.tools.iter().filter(|t| !t.is_cp()).collect();
    let azsyncs: Vec<&ToolRuns> = tools.iter().copied().filter(|t| t.is_azsync()).collect();
    let primary = azsyncs.first().map(|t| t.tool.clone());
    let local = matches!(setup.mode, Mode::Local);
    let mut header = "| scenario |".to_string();
    let mut align = "| --- |".to_string();
    for t in &tools {
        let _ = write!(header, " {} s |", t.label);
        align.push_str(" ---: |");
    }
    for t in &azsyncs {
        if azsyncs.len() == 1 {
            header.push_str(" ratio |");
        } else {
            let _ = write!(header, " ratio {} |", t.label);
        }
        align.push_str(" ---: |");
    }
    header.push_str(" target |");
    align.push_str(" ---: |");
    let rss_tools: Vec<&ToolRuns> = tools
        .iter()
        .copied()
        .filter(|t| t.is_rsync() || Some(&t.tool) == primary.as_ref())
        .collect();
    for t in &rss_tools {
        if local {
            let _ = write!(header, " {} peak RSS |", t.label);
        } else {
            let _ = write!(header, " RSS {} (local / remote) |", t.label);
        }
        align.push_str(" ---: |");
    }
    if !local {
        let labels: Vec<&str> = rss_tools.iter().map(|t| t.label.as_str()).collect();
        let _ = write!(header, " wire {} MB |", labels.join(" / "));
        align.push_str(" ---: |");
    }
    let _ = writeln!(md, "{header}\n{align}");
    for sc in scenarios {
        let find = |name: &str| sc.tools.iter().find(|t| t.tool == name);
        let mut row = format!("| {}{} |", sc.name, sc.flag(setup.runs));
        for t in &tools {
            let cell = find(&t.tool).map_or("–".to_string(), |r| tool_cell(r, r.median(), 3));
            let _ = write!(row, " {cell} |");
        }
        for t in &azsyncs {
            let ratio = find(&t.tool).and_then(|r| sc.ratio(r));
            let _ = write!(row, " {} |", ratio_cell(ratio));
        }
        let primary_ratio = primary.as_deref().and_then(find).and_then(|r| sc.ratio(r));
        let _ = write!(
            row,
            " {} |",
            target_cell(primary_ratio, target(sc.kind, &setup.mode))
        );
        let mut wires = Vec::new();
        for t in &rss_tools {
            let Some(r) = find(&t.tool) else {
                row.push_str(" – |");
                continue;
            };
            if local {
                let _ = write!(row, " {} |", mb_cell(r, peak_mib(&r.samples)));
            } else {
                let _ = write!(
                    row,
                    " {} / {} |",
                    tool_cell(r, peak_mib(&r.samples), 1),
                    mb_cell(r, remote_peak_mib(&r.samples))
                );
            }
            wires.push(tool_cell(r, median_wire_mib(&r.samples), 1));
        }
        if !local {
            let _ = write!(row, " {} |", wires.join(" / "));
        }
        let _ = writeln!(md, "{row}");
    }
    let _ = writeln!(md);
}

/// The first sync against `cp -a` of the same tree on the same disk.
fn cp_line(md: &mut String, scenarios: &[Scenario]) {
    let Some(sc) = scenarios.iter().find(|s| s.kind == ScenarioKind::First) else {
        return;
    };
    let Some(cp) = sc.cp() else { return };
    let cp_secs = cp.median();
    let parts: Vec<String> = sc
        .tools
        .iter()
        .filter(|t| t.is_azsync() && t.unsupported.is_none())
        .map(|t| {
            let ratio = t.median() / cp_secs;
            let verdict = if !ratio.is_finite() {
                "n/a".to_string()
            } else if ratio <= CP_TARGET {
                format!("{ratio:.2}, target ≤ {CP_TARGET} met")
            } else {
                format!("{ratio:.2}, target ≤ {CP_TARGET} **missed**")
            };
            format!("{} / `cp -a` = {verdict}", t.label)
        })
        .collect();
    let _ = writeln!(
        md,
        "First sync against a plain copy of the same tree on the same disk: `cp -a` median {} s \
         (peak RSS {}); {}.\n",
        tool_cell(cp, cp_secs, 3),
        mb_cell(cp, peak_mib(&cp.samples)),
        parts.join("; ")
    );
}

/// One row per tool per scenario.
fn per_tool_table(md: &mut String, scenarios: &[Scenario], runs: usize) {
    let _ = writeln!(
        md,
        "| scenario | tool | median s | ratio to rsync | local peak RSS MB | remote peak RSS MB | \
         wire MB |"
    );
    let _ = writeln!(md, "| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for sc in scenarios {
        for (i, t) in sc.tools.iter().filter(|t| !t.is_cp()).enumerate() {
            let scenario = if i == 0 {
                format!("{}{}", sc.name, sc.flag(runs))
            } else {
                String::new()
            };
            let ratio = if t.is_rsync() {
                "1.00".to_string()
            } else {
                ratio_cell(sc.ratio(t))
            };
            let _ = writeln!(
                md,
                "| {scenario} | {} | {} | {ratio} | {} | {} | {} |",
                t.tool,
                tool_cell(t, t.median(), 3),
                tool_cell(t, peak_mib(&t.samples), 1),
                tool_cell(t, remote_peak_mib(&t.samples), 1),
                tool_cell(t, median_wire_mib(&t.samples), 2),
            );
        }
    }
    let _ = writeln!(md);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Wire;

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
            openssh_version: "OpenSSH_9.6p1".into(),
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
            notes: vec!["a note".into()],
            load: ("0.10 0.20 0.30".into(), "1.00 1.10 1.20".into()),
            ssh_floor: None,
        }
    }

    fn sample(ms: u64, kib: u64) -> Sample {
        Sample {
            wall: Duration::from_millis(ms),
            max_rss_kib: kib,
            remote_rss_kib: None,
            wire: None,
            link: None,
        }
    }

    fn runs(tool: &str, label: &str, samples: Vec<Sample>) -> ToolRuns {
        ToolRuns {
            samples,
            ..ToolRuns::new(tool, label)
        }
    }

    #[test]
    fn local_table_with_cp_and_targets() {
        let setup = setup(Mode::Local);
        let first = Scenario {
            kind: ScenarioKind::First,
            name: "first sync".into(),
            tools: vec![
                runs(
                    "azsync",
                    "azsync",
                    vec![sample(100, 2048), sample(300, 1024)],
                ),
                runs("rsync", "rsync", vec![sample(400, 4096), sample(400, 4096)]),
                runs("cp -a", "`cp -a`", vec![sample(160, 512), sample(200, 512)]),
            ],
            problems: Vec::new(),
        };
        let mut noop = first.clone();
        noop.kind = ScenarioKind::Noop;
        noop.name = "no-op".into();
        noop.tools.pop();
        let mut delete = noop.clone();
        delete.kind = ScenarioKind::Delete;
        delete.name = "bad".into();
        delete.tools[0] = ToolRuns {
            failed: 2,
            ..ToolRuns::new("azsync", "azsync")
        };
        delete.problems = vec!["x".into(), "y".into()];
        let md = markdown(&setup, &[first, noop, delete]);
        assert!(md.contains("(local destination)"), "{md}");
        assert!(
            md.contains(
                "| scenario | azsync s | rsync s | ratio | target | azsync peak RSS | \
                 rsync peak RSS |\n| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n"
            ),
            "{md}"
        );
        assert!(
            md.contains("| first sync | 0.200 | 0.400 | 0.50 | ≤ 0.50 met | 2.0 MB | 4.0 MB |"),
            "{md}"
        );
        assert!(
            md.contains("| no-op | 0.200 | 0.400 | 0.50 | ≤ 0.40 **missed** | 2.0 MB | 4.0 MB |"),
            "{md}"
        );
        assert!(
            md.contains(
                "| bad (**azsync failed 2 of 2 runs**) | failed | 0.400 | n/a | – | failed | \
                 4.0 MB |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "`cp -a` median 0.180 s (peak RSS 0.5 MB); azsync / `cp -a` = 1.11, target ≤ \
                 1.2 met."
            ),
            "{md}"
        );
        assert!(md.contains("- note: a note"), "{md}");
        assert!(
            md.contains("0.10 0.20 0.30 before the benchmark, 1.00 1.10 1.20 after it"),
            "{md}"
        );
        assert!(
            md.contains("azsync failed, failed; rsync 0.400, 0.400"),
            "{md}"
        );
        assert!(md.contains("  - azsync: `a`"), "{md}");
        assert!(!md.contains("all matched"), "{md}");
    }

    #[test]
    fn ssh_tables_have_both_sides_and_the_wire() {
        let mut setup = setup(Mode::Ssh);
        setup
            .commands
            .insert(0, ("azsync-native".into(), "n".into()));
        let remote = |ms, kib, remote_kib, sent, received| Sample {
            remote_rss_kib: Some(remote_kib),
            wire: Some(Wire { sent, received }),
            ..sample(ms, kib)
        };
        let sc = Scenario {
            kind: ScenarioKind::Changed,
            name: "changed".into(),
            tools: vec![
                runs(
                    "azsync-native",
                    "built-in",
                    vec![
                        remote(100, 2048, 3072, 1 << 20, 1 << 19),
                        remote(300, 1024, 1024, 1 << 20, 1 << 19),
                    ],
                ),
                ToolRuns {
                    unsupported: Some("the --sftp mode is not available".into()),
                    ..ToolRuns::new("azsync-sftp", "`--sftp`")
                },
                runs(
                    "rsync",
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
        assert!(md.contains("`OpenSSH_9.6p1`"), "{md}");
        assert!(
            md.contains(
                "| scenario | built-in s | `--sftp` s | rsync s | ratio built-in | ratio \
                 `--sftp` | target | RSS built-in (local / remote) | RSS rsync (local / remote) \
                 | wire built-in / rsync MB |"
            ),
            "{md}"
        );
        assert!(
            md.contains(
                "| changed | 0.200 | unsupported | 0.400 | 0.50 | n/a | ≤ 0.50 met | 2.0 / 3.0 \
                 MB | 4.0 / 5.0 MB | 1.5 / 3.0 |"
            ),
            "{md}"
        );
        assert!(
            md.contains("| changed | azsync-native | 0.200 | 0.50 | 2.0 | 3.0 | 1.50 |"),
            "{md}"
        );
        assert!(
            md.contains(
                "|  | azsync-sftp | unsupported | n/a | unsupported | unsupported | unsupported |"
            ),
            "{md}"
        );
        assert!(
            md.contains("|  | rsync | 0.400 | 1.00 | 4.0 | 5.0 | 3.00 |"),
            "{md}"
        );
        assert!(md.contains("1,048,576 / 524,288 (2.0 / 3.0)"), "{md}");
        assert!(
            md.contains("azsync-sftp: not supported by this azsync build"),
            "{md}"
        );
        assert!(md.contains("all matched"), "{md}");
    }

    #[test]
    fn wan_report_uses_link_bytes_and_wan_targets() {
        let check = LinkCheck {
            rtt: Duration::from_millis(41),
            bytes: 16 << 20,
            elapsed: Duration::from_secs_f64(1.4),
        };
        let setup = setup(Mode::Wan {
            rtt_ms: 40,
            mbit: 100,
            check,
        });
        let linked = |ms| Sample {
            wire: Some(Wire {
                sent: 1 << 20,
                received: 0,
            }),
            link: Some(Wire {
                sent: 2 << 20,
                received: 1 << 20,
            }),
            ..sample(ms, 1024)
        };
        let sc = Scenario {
            kind: ScenarioKind::Noop,
            name: "no-op".into(),
            tools: vec![
                runs("azsync-native", "built-in", vec![linked(100)]),
                runs("rsync", "rsync", vec![linked(400)]),
            ],
            problems: Vec::new(),
        };
        let mut setup = setup;
        setup.ssh_floor = Some(Duration::from_millis(321));
        let md = markdown(&setup, &[sc]);
        assert!(md.contains("40 ms round trip, 100 Mbit/s each way"), "{md}");
        assert!(
            md.contains("- SSH floor: `ssh HOST true` over the same path takes 0.321 s"),
            "{md}"
        );
        assert!(
            md.contains("round trip 41.0 ms, 95.9 Mbit/s one way"),
            "{md}"
        );
        assert!(md.contains("| 0.25 | ≤ 0.50 met |"), "{md}");
        assert!(md.contains("| 3.0 / 3.0 |"), "{md}");
        assert!(md.contains("; link 2,097,152 / 1,048,576"), "{md}");
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
