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
    pub azsync_cmd: String,
    pub rsync_cmd: String,
}

/// The samples of one scenario, azsync's and rsync's, in run order.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub azsync: Vec<Sample>,
    pub rsync: Vec<Sample>,
    /// Runs that failed (not in the samples).
    pub azsync_failed: usize,
    pub rsync_failed: usize,
    /// Failed runs and problems found when checking the destinations, if any (shown under the table).
    pub problems: Vec<String>,
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

/// A table cell: `value` with `digits` decimals, or "failed" when no run succeeded (NaN).
fn cell(value: f64, digits: usize) -> String {
    if value.is_finite() {
        format!("{value:.digits$}")
    } else {
        "failed".to_string()
    }
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

/// The whole report as Markdown.
pub fn markdown(setup: &Setup, scenarios: &[Scenario]) -> String {
    let mut md = String::new();
    let s = setup;
    let _ = writeln!(md, "## azsync vs rsync, end to end (local destination)\n");
    let _ = writeln!(
        md,
        "- machine: {} CPUs ({}), {} RAM, kernel {}",
        s.cpus, s.cpu_model, s.mem_total, s.kernel
    );
    let _ = writeln!(md, "- rsync: `{}`", s.rsync_version);
    let _ = writeln!(md, "- azsync: `{}`", s.azsync_version);
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
    let _ = writeln!(md, "- commands: `{}` and `{}`", s.azsync_cmd, s.rsync_cmd);
    let _ = writeln!(
        md,
        "- method: {} run(s) per tool per scenario, alternating azsync and rsync; median wall \
         time; peak RSS is the largest `ru_maxrss` over the runs, as GNU time reports it: the \
         largest single process of the tool's process tree (azsync and its agent; rsync's \
         sender, generator and receiver), not their sum. MB = MiB.\n",
        s.runs
    );
    let _ = writeln!(
        md,
        "| scenario | azsync median s | rsync median s | ratio | azsync peak RSS MB | rsync peak RSS MB |"
    );
    let _ = writeln!(md, "| --- | ---: | ---: | ---: | ---: | ---: |");
    for sc in scenarios {
        let (a, r) = (median_secs(&sc.azsync), median_secs(&sc.rsync));
        let mut flags = Vec::new();
        for (tool, failed) in [("azsync", sc.azsync_failed), ("rsync", sc.rsync_failed)] {
            if failed > 0 {
                flags.push(format!("{tool} failed {failed} of {} runs", s.runs));
            }
        }
        if sc.problems.len() > sc.azsync_failed + sc.rsync_failed {
            flags.push("destination differs".to_string());
        }
        let flag = if flags.is_empty() {
            String::new()
        } else {
            format!(" (**{}**)", flags.join(", "))
        };
        let ratio = if a.is_finite() && r.is_finite() {
            format!("{:.2}", a / r)
        } else {
            "n/a".to_string()
        };
        let _ = writeln!(
            md,
            "| {}{flag} | {} | {} | {ratio} | {} | {} |",
            sc.name,
            cell(a, 3),
            cell(r, 3),
            cell(peak_mib(&sc.azsync), 1),
            cell(peak_mib(&sc.rsync), 1)
        );
    }
    let _ = writeln!(
        md,
        "\nratio = azsync / rsync median wall time; below 1 means azsync is faster.\n"
    );
    let _ = writeln!(md, "Every run (wall seconds):\n");
    for sc in scenarios {
        let list = |v: &[Sample], failed: usize| {
            let mut runs: Vec<_> = v.iter().map(|x| secs(x.wall)).collect();
            runs.extend(std::iter::repeat_n("failed".to_string(), failed));
            runs.join(", ")
        };
        let _ = writeln!(
            md,
            "- {}: azsync {}; rsync {}",
            sc.name,
            list(&sc.azsync, sc.azsync_failed),
            list(&sc.rsync, sc.rsync_failed)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn table_marks_failures() {
        let setup = Setup {
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
            azsync_cmd: "a".into(),
            rsync_cmd: "r".into(),
        };
        let sample = |ms, kib| Sample {
            wall: Duration::from_millis(ms),
            max_rss_kib: kib,
        };
        let ok = Scenario {
            name: "ok".into(),
            azsync: vec![sample(100, 2048), sample(300, 1024)],
            rsync: vec![sample(400, 4096), sample(400, 4096)],
            azsync_failed: 0,
            rsync_failed: 0,
            problems: Vec::new(),
        };
        let md = markdown(&setup, std::slice::from_ref(&ok));
        assert!(
            md.contains("| ok | 0.200 | 0.400 | 0.50 | 2.0 | 4.0 |"),
            "{md}"
        );
        assert!(md.contains("all matched"), "{md}");
        let failed = Scenario {
            name: "bad".into(),
            azsync: Vec::new(),
            azsync_failed: 2,
            problems: vec!["x".into(), "y".into()],
            ..ok
        };
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
