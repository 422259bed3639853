//! Checks that a destination is a faithful copy of the source, so that a fast run is also a
//! correct one: the same entries of the same types, file contents, sizes, modes and mtimes (to
//! the nanosecond, or to the second for SFTP mode, whose protocol carries no more), symlink
//! targets, and nothing extra. Directory mtimes are not compared.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::fs::{self, File, Metadata};
use std::io::{ErrorKind, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use anyhow::{Context, Result};

/// How many problems are kept as examples.
const EXAMPLES: usize = 5;

/// The outcome of one comparison.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// Entries of the source that were checked.
    pub entries: u64,
    /// Problems found; only the first few are kept in `examples`.
    pub problems: u64,
    pub examples: Vec<String>,
}

impl Report {
    pub fn ok(&self) -> bool {
        self.problems == 0
    }

    fn problem(&mut self, rel: &Path, what: impl FnOnce() -> String) {
        self.problems += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(format!("{}: {}", rel.display(), what()));
        }
    }
}

/// Compares the tree at `dst` with the tree at `src`; `whole_seconds` compares mtimes to the
/// second only (what SFTP v3 can carry).
pub fn compare(src: &Path, dst: &Path, whole_seconds: bool) -> Result<Report> {
    let mut checker = Checker {
        whole_seconds,
        report: Report::default(),
        a: vec![0; 1 << 20],
        b: vec![0; 1 << 20],
    };
    checker.dir(src, dst, Path::new(""))?;
    Ok(checker.report)
}

struct Checker {
    whole_seconds: bool,
    report: Report,
    a: Vec<u8>,
    b: Vec<u8>,
}

impl Checker {
    fn dir(&mut self, src: &Path, dst: &Path, rel: &Path) -> Result<()> {
        let src_names = names(src)?;
        let dst_names = names(dst)?;
        for extra in dst_names.difference(&src_names) {
            self.report
                .problem(&rel.join(extra), || "only in the destination".into());
        }
        for name in &src_names {
            let (s, d, r) = (src.join(name), dst.join(name), rel.join(name));
            self.report.entries += 1;
            let sm = fs::symlink_metadata(&s).with_context(|| format!("stat {}", s.display()))?;
            let dm = match fs::symlink_metadata(&d) {
                Ok(m) => m,
                Err(e) if e.kind() == ErrorKind::NotFound => {
                    self.report
                        .problem(&r, || "missing from the destination".into());
                    continue;
                }
                Err(e) => return Err(e).with_context(|| format!("stat {}", d.display())),
            };
            if sm.file_type() != dm.file_type() {
                let (st, dt) = (sm.file_type(), dm.file_type());
                self.report
                    .problem(&r, || format!("type {st:?} became {dt:?}"));
            } else if sm.is_symlink() {
                let (st, dt) = (fs::read_link(&s)?, fs::read_link(&d)?);
                if st != dt {
                    self.report.problem(&r, || {
                        format!("link to {} became {}", st.display(), dt.display())
                    });
                }
            } else if sm.is_dir() {
                self.mode(&sm, &dm, &r);
                self.dir(&s, &d, &r)?;
            } else {
                self.file(&s, &d, &sm, &dm, &r)?;
            }
        }
        Ok(())
    }

    fn mode(&mut self, sm: &Metadata, dm: &Metadata, rel: &Path) {
        let (sp, dp) = (
            sm.permissions().mode() & 0o7777,
            dm.permissions().mode() & 0o7777,
        );
        if sp != dp {
            self.report
                .problem(rel, || format!("mode {sp:o} became {dp:o}"));
        }
    }

    fn file(&mut self, s: &Path, d: &Path, sm: &Metadata, dm: &Metadata, rel: &Path) -> Result<()> {
        if sm.len() != dm.len() {
            let (sl, dl) = (sm.len(), dm.len());
            self.report
                .problem(rel, || format!("size {sl} became {dl}"));
            return Ok(());
        }
        self.mode(sm, dm, rel);
        let (st, dt) = (sm.modified()?, dm.modified()?);
        let seconds = |t: std::time::SystemTime| {
            t.duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .ok()
        };
        let differs = if self.whole_seconds {
            seconds(st) != seconds(dt)
        } else {
            st != dt
        };
        if differs {
            self.report
                .problem(rel, || format!("mtime {st:?} became {dt:?}"));
        }
        let mut sf = File::open(s).with_context(|| format!("opening {}", s.display()))?;
        let mut df = File::open(d).with_context(|| format!("opening {}", d.display()))?;
        let mut left = sm.len() as usize;
        while left > 0 {
            let n = left.min(self.a.len());
            sf.read_exact(&mut self.a[..n])
                .with_context(|| format!("reading {}", s.display()))?;
            df.read_exact(&mut self.b[..n])
                .with_context(|| format!("reading {}", d.display()))?;
            if self.a[..n] != self.b[..n] {
                self.report.problem(rel, || "content differs".into());
                break;
            }
            left -= n;
        }
        Ok(())
    }
}

fn names(dir: &Path) -> Result<BTreeSet<OsString>> {
    fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .map(|entry| Ok(entry?.file_name()))
        .collect::<std::io::Result<_>>()
        .with_context(|| format!("listing {}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::Plan;

    #[test]
    fn finds_differences() -> Result<()> {
        let base = std::env::temp_dir().join(format!("azsync-bench-verify-{}", std::process::id()));
        let _ = fs::remove_dir_all(&base);
        let plan = Plan::generate(200, 11);
        plan.write(&base.join("a"))?;
        plan.write(&base.join("b"))?;
        assert!(compare(&base.join("a"), &base.join("b"), false)?.ok());
        plan.change_some(&base.join("b"), 1)?;
        fs::write(base.join("b/extra"), b"x")?;
        let report = compare(&base.join("a"), &base.join("b"), false)?;
        assert_eq!(report.problems, 3, "{report:?}");
        assert!(report.entries >= 200);
        fs::remove_dir_all(&base)?;
        Ok(())
    }
}
