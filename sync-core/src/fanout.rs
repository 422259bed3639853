//! One source, many destinations: [`SyncBuilder::run_many`].

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::progress::{Progress, Report};
use crate::transport::Transport;
use crate::walk::{SharedListings, Walker};
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

/// Listings queued for each destination of a shared walk: the walk runs at most this far ahead
/// of the slowest destination.
const WALK_QUEUE: usize = 16;

impl SyncBuilder {
    /// Syncs the source into every destination and returns one [`Outcome`] per destination, in
    /// the order given. One destination failing (unreachable, its receiver dying) does not stop
    /// the others.
    ///
    /// The source is walked (and with [`checksum`](Self::checksum) hashed) once for up to
    /// `max_parallel` destinations (at least 1), whose sessions run at the same time, each fed
    /// every directory listing through a bounded queue: the slowest destination paces the walk,
    /// so memory stays bounded however large the tree. More destinations than that go in further
    /// groups of `max_parallel`, one walk each. The content scan
    /// ([`scan_secrets`](Self::scan_secrets)) runs once in all. File data is read once per
    /// destination that needs it (the page cache serves all but the first).
    ///
    /// The builder's own destination and transport are not used; every other option applies
    /// to each destination. The outer `Err` is for what fails before any destination starts:
    /// an unreadable source, a bad exclude pattern.
    pub fn run_many(
        self,
        destinations: Vec<Destination>,
        max_parallel: usize,
    ) -> Result<Vec<Outcome>> {
        Ok(self.run_many_counted(destinations, max_parallel)?.0)
    }

    /// [`run_many`](Self::run_many), also returning how many directories were walked in all.
    fn run_many_counted(
        self,
        destinations: Vec<Destination>,
        max_parallel: usize,
    ) -> Result<(Vec<Outcome>, usize)> {
        let patterns = self.patterns()?;
        let filter = filter::Filter::new(&patterns, self.options.allow_secrets)?;
        let found = self.scan(&filter)?;
        // What each session's own sender would walk with: the patterns plus the scan's finds.
        let mut walk_patterns = patterns;
        walk_patterns.extend(found.patterns.iter().cloned());
        let walk_filter = filter::Filter::new(&walk_patterns, self.options.allow_secrets)?;

        let mut outcomes = Vec::with_capacity(destinations.len());
        let mut walked = 0;
        let mut rest = destinations.into_iter().peekable();
        while rest.peek().is_some() {
            let group: Vec<Destination> = rest.by_ref().take(max_parallel.max(1)).collect();
            let (done, dirs) = self.run_group(group, &found, &walk_filter)?;
            outcomes.extend(done);
            walked += dirs;
        }
        Ok((outcomes, walked))
    }

    /// Runs one session per destination at once, all fed by one walk; returns the outcomes and
    /// how many directories the walk listed.
    fn run_group(
        &self,
        group: Vec<Destination>,
        found: &Arc<crate::scan::Found>,
        filter: &filter::Filter,
    ) -> Result<(Vec<Outcome>, usize)> {
        let mut walker = Walker::new(&self.source, filter, self.options.checksum, self.safe_links)
            .map_err(|e| Error::io(&self.source, e))?;
        let mut queues = Vec::with_capacity(group.len());
        let sessions: Vec<(String, SyncBuilder)> = group
            .into_iter()
            .map(|d| {
                let (tx, rx) = crossbeam_channel::bounded(WALK_QUEUE);
                queues.push(tx);
                let label = d.label.clone();
                let mut builder = self.for_destination(d, Arc::clone(found));
                builder.shared_walk = Some(SharedListings { queue: rx });
                (label, builder)
            })
            .collect();
        std::thread::scope(|scope| {
            let walking = scope.spawn(move || {
                let mut dirs = 0;
                while let Some(listing) = walker.next_dir() {
                    dirs += 1;
                    let listing = Arc::new(listing.map_err(|e| e.to_string()));
                    // A destination that stopped (its session failed) drops its queue; the
                    // others go on.
                    queues.retain(|q| q.send(Arc::clone(&listing)).is_ok());
                    if queues.is_empty() {
                        break;
                    }
                }
                // Dropping the queues ends every session's tree.
                dirs
            });
            let running: Vec<_> = sessions
                .into_iter()
                .map(|(label, builder)| {
                    scope.spawn(move || {
                        // A panic in one destination's sync must not take the others down.
                        let result = std::panic::catch_unwind(AssertUnwindSafe(|| builder.run()))
                            .unwrap_or_else(|_| {
                                Err(Error::Config(format!("the sync to {label} panicked")))
                            });
                        Outcome { label, result }
                    })
                })
                .collect();
            let outcomes = running
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| Outcome {
                        label: String::new(),
                        result: Err(Error::Config("a destination's thread panicked".into())),
                    })
                })
                .collect();
            let dirs = walking.join().unwrap_or(0);
            Ok((outcomes, dirs))
        })
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
            shared_walk: None,
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

    #[test]
    fn the_source_is_walked_once_for_a_group_of_destinations() {
        let t = tempfile::tempdir().unwrap();
        let src = t.path().join("src");
        for d in 0..20 {
            let dir = src.join(format!("d{d}/e"));
            fs::create_dir_all(&dir).unwrap();
            for f in 0..30 {
                fs::write(dir.join(format!("f{f}")), format!("{d}/{f}")).unwrap();
            }
        }
        let dirs = 1 + 20 * 2;
        let dests = |names: &[&str]| -> Vec<Destination> {
            names
                .iter()
                .map(|n| Destination::new(*n, t.path().join(n), Transport::InProcess))
                .collect()
        };
        let (outcomes, walked) = SyncBuilder::new(&src, "")
            .checksum(true)
            .run_many_counted(dests(&["a", "b", "c"]), 4)
            .unwrap();
        assert_eq!(walked, dirs, "three destinations, one walk");
        for o in &outcomes {
            let report = o.result.as_ref().unwrap();
            assert_eq!(report.files_transferred, 600, "{}", o.label);
            assert_eq!(
                fs::read(t.path().join(&o.label).join("d7/e/f3")).unwrap(),
                b"7/3"
            );
        }
        // Groups of two: two walks for three destinations; a re-sync transfers nothing.
        let (outcomes, walked) = SyncBuilder::new(&src, "")
            .run_many_counted(dests(&["a", "b", "c"]), 2)
            .unwrap();
        assert_eq!(walked, 2 * dirs);
        for o in &outcomes {
            assert_eq!(o.result.as_ref().unwrap().files_transferred, 0);
        }
    }
}
