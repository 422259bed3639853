//! One source, many destinations: [`SyncBuilder::run_many`].

use std::collections::VecDeque;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::progress::{Progress, Report};
use crate::transport::Transport;
use crate::{filter, SyncBuilder};

/// One destination of [`SyncBuilder::run_many`].
#[derive(Debug)]
pub struct Destination {
    /// How this destination is named in outcomes and messages (a VM name, say).
    pub label: String,
    /// The destination directory, on the machine `transport` reaches.
    pub path: PathBuf,
    /// How to reach its receiver.
    pub transport: Transport,
    /// Progress for this destination alone; `None` uses the builder's.
    pub progress: Option<Arc<dyn Progress>>,
}

impl Destination {
    /// A destination with the builder's progress.
    pub fn new(label: impl Into<String>, path: impl Into<PathBuf>, transport: Transport) -> Self {
        Destination {
            label: label.into(),
            path: path.into(),
            transport,
            progress: None,
        }
    }

    /// Report this destination's progress to `progress`.
    pub fn progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = Some(progress);
        self
    }
}

/// How the sync to one destination ended.
#[derive(Debug)]
pub struct Outcome {
    /// The destination's label.
    pub label: String,
    /// Its report, or why it failed as a whole.
    pub result: Result<Report>,
}

impl SyncBuilder {
    /// Syncs the source into every destination, at most `max_parallel` at once (at least 1),
    /// and returns one [`Outcome`] per destination, in the order given. One destination
    /// failing (unreachable, its receiver dying) does not stop the others.
    ///
    /// The builder's own destination and transport are not used; every other option applies
    /// to each destination. The outer `Err` is for what fails before any destination starts:
    /// an unreadable source, a bad exclude pattern.
    ///
    /// What the API promises is only this: each destination gets the same tree under the same
    /// rules, and its own report. How the work is shared is not part of it. Today the content
    /// scan ([`scan_secrets`](Self::scan_secrets)) runs once and each destination then runs a
    /// full session of its own in its own thread (walking and reading the source once per
    /// destination, which the page cache makes cheap after the first); a later version may
    /// walk and hash the source once and stream it to every destination.
    pub fn run_many(
        self,
        destinations: Vec<Destination>,
        max_parallel: usize,
    ) -> Result<Vec<Outcome>> {
        let patterns = self.patterns()?;
        let filter = filter::Filter::new(&patterns, self.options.allow_secrets)?;
        let found = self.scan(&filter)?;

        let total = destinations.len();
        let queue: Mutex<VecDeque<(usize, String, SyncBuilder)>> = Mutex::new(
            destinations
                .into_iter()
                .enumerate()
                .map(|(i, d)| {
                    let label = d.label.clone();
                    (i, label, self.for_destination(d, Arc::clone(&found)))
                })
                .collect(),
        );
        let results: Mutex<Vec<Option<Outcome>>> = Mutex::new((0..total).map(|_| None).collect());
        let workers = max_parallel.clamp(1, total.max(1));
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let next = queue.lock().unwrap_or_else(|p| p.into_inner()).pop_front();
                    let Some((index, label, builder)) = next else {
                        break;
                    };
                    // A panic in one destination's sync must not take the others down.
                    let result = std::panic::catch_unwind(AssertUnwindSafe(|| builder.run()))
                        .unwrap_or_else(|_| {
                            Err(Error::Config(format!("the sync to {label} panicked")))
                        });
                    if let Some(slot) = results
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .get_mut(index)
                    {
                        *slot = Some(Outcome { label, result });
                    }
                });
            }
        });
        Ok(results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .flatten()
            .collect())
    }

    /// This builder's options aimed at `destination`. Every field is listed (no `..`): a new
    /// option must decide here whether it applies to each destination.
    fn for_destination(&self, destination: Destination, found: Arc<crate::scan::Found>) -> Self {
        SyncBuilder {
            source: self.source.clone(),
            destination: destination.path,
            options: self.options.clone(),
            excludes: self.excludes.clone(),
            exclude_files: self.exclude_files.clone(),
            safe_links: self.safe_links,
            window: self.window,
            compress: self.compress,
            transport: destination.transport,
            progress: destination.progress.or_else(|| self.progress.clone()),
            home_profile: self.home_profile,
            scan_secrets: self.scan_secrets,
            prescanned: Some(found),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn every_destination_gets_the_tree_and_a_failure_stays_its_own() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        fs::create_dir_all(src.join("notes")).unwrap();
        fs::write(src.join("notes/todo.txt"), "ship it").unwrap();
        fs::write(src.join("notes/keys.txt"), "AKIAIOSFODNN7EXAMPLE").unwrap();
        // A destination that cannot be created: its parent is a file.
        fs::write(t.path().join("file"), "").unwrap();
        let dests: Vec<Destination> = ["a", "b", "c"]
            .iter()
            .map(|n| Destination::new(*n, t.path().join(n), Transport::InProcess))
            .chain([Destination::new(
                "bad",
                t.path().join("file/below"),
                Transport::InProcess,
            )])
            .collect();
        let outcomes = SyncBuilder::new(&src, "")
            .scan_secrets(true)
            .run_many(dests, 2)
            .unwrap();
        let labels: Vec<&str> = outcomes.iter().map(|o| o.label.as_str()).collect();
        assert_eq!(labels, ["a", "b", "c", "bad"]);
        for o in &outcomes[..3] {
            let report = o.result.as_ref().unwrap();
            assert_eq!(report.files_transferred, 1, "{}", o.label);
            assert_eq!(report.skipped.len(), 1, "{}", o.label);
            let dst = t.path().join(&o.label);
            assert_eq!(fs::read(dst.join("notes/todo.txt")).unwrap(), b"ship it");
            assert!(!dst.join("notes/keys.txt").exists());
        }
        assert!(outcomes[3].result.is_err());
    }
}
