//! What the user sees: a progress bar on a terminal, plain lines otherwise, or one JSON object.

use std::io::{self, IsTerminal, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use sync_core::{Change, FileError, Progress, Report, Skipped};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// A live bar on stderr (a terminal, and not --no-progress).
    Bar,
    /// Plain lines only.
    Plain,
    /// One JSON object on stdout at the end, nothing else on stdout.
    Json,
}

impl Style {
    pub fn choose(json: bool, no_progress: bool) -> Style {
        if json {
            Style::Json
        } else if !no_progress && io::stderr().is_terminal() {
            Style::Bar
        } else {
            Style::Plain
        }
    }
}

pub struct Output {
    style: Style,
    itemize: bool,
    bar: Option<ProgressBar>,
    files_scanned: AtomicU64,
    files_sent: AtomicU64,
    /// Set once stdout is closed under us (`azsync ... | head`): stop writing, quietly.
    stdout_closed: Mutex<bool>,
}

impl Output {
    pub fn new(style: Style, itemize: bool) -> Output {
        let bar = (style == Style::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta} · {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Output {
            style,
            itemize,
            bar,
            files_scanned: AtomicU64::new(0),
            files_sent: AtomicU64::new(0),
            stdout_closed: Mutex::new(false),
        }
    }

    fn stdout_line(&self, line: &str) {
        let mut closed = self.stdout_closed.lock().unwrap_or_else(|p| p.into_inner());
        if *closed {
            return;
        }
        let write = || -> io::Result<()> {
            let mut out = io::stdout().lock();
            out.write_all(line.as_bytes())?;
            out.write_all(b"\n")
        };
        let result = match &self.bar {
            Some(bar) => bar.suspend(write),
            None => write(),
        };
        if let Err(e) = result {
            if e.kind() == io::ErrorKind::BrokenPipe {
                *closed = true;
            }
        }
    }

    fn stderr_line(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| eprintln!("{line}")),
            None => eprintln!("{line}"),
        }
    }

    pub fn finish_progress(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }

    pub fn report(&self, report: &Report, elapsed: Duration) -> anyhow::Result<()> {
        for e in &report.errors {
            self.stderr_line(&format!("azsync: error: {e}"));
        }
        match self.style {
            Style::Json => {
                let mut value = serde_json::to_value(report)?;
                if let Some(map) = value.as_object_mut() {
                    map.insert("elapsed_secs".into(), elapsed.as_secs_f64().into());
                }
                self.stdout_line(&value.to_string());
            }
            Style::Bar | Style::Plain => {
                let verb = if report.dry_run {
                    "would transfer"
                } else {
                    "transferred"
                };
                self.stderr_line(&format!(
                    "{} files scanned, {verb} {} ({} by delta), {} up to date, {} deleted; \
                     {} literal, {} matched, {} sent, {} received in {:.2}s",
                    report.files_scanned,
                    report.files_transferred,
                    report.files_delta,
                    report.files_up_to_date,
                    report.deleted,
                    human(report.bytes_literal),
                    human(report.bytes_matched),
                    human(report.bytes_sent),
                    human(report.bytes_received),
                    elapsed.as_secs_f64(),
                ));
                if !report.errors.is_empty() {
                    self.stderr_line(&format!(
                        "azsync: {} path(s) failed; the rest synced",
                        report.errors.len()
                    ));
                }
            }
        }
        Ok(())
    }
}

fn human(bytes: u64) -> String {
    indicatif::HumanBytes(bytes).to_string()
}

impl Progress for Output {
    fn scanned(&self, files: u64, bytes: u64) {
        self.files_scanned.fetch_add(files, Ordering::Relaxed);
        if let Some(bar) = &self.bar {
            bar.inc_length(bytes);
        }
    }

    fn transferred(&self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn file_sent(&self, path: &Path) {
        let sent = self.files_sent.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(bar) = &self.bar {
            bar.set_message(format!(
                "{sent} sent of {} files scanned · {}",
                self.files_scanned.load(Ordering::Relaxed),
                path.display()
            ));
        }
    }

    fn change(&self, change: &Change) {
        if !self.itemize || self.style == Style::Json {
            return;
        }
        let path = String::from_utf8_lossy(&change.path);
        let line = if change.target.is_empty() {
            format!("{:<11} {path}", change.code)
        } else {
            format!(
                "{:<11} {path} -> {}",
                change.code,
                String::from_utf8_lossy(&change.target)
            )
        };
        self.stdout_line(&line);
    }

    fn skipped(&self, skipped: &Skipped) {
        self.stderr_line(&format!(
            "azsync: skipped {}: {}",
            skipped.reason.as_str(),
            skipped.path.display()
        ));
    }

    fn file_error(&self, _error: &FileError) {
        // Reported once, with the receiver's failures, when the sync ends.
    }

    fn notice(&self, message: &str) {
        self.stderr_line(&format!("azsync: {message}"));
    }
}
