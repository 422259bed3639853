//! Micro-benchmarks of walking a tree: a no-op sync of a generated home-like tree of 3,000 files
//! (the e2e harness's generator) through the engine's public API, with and without
//! `--checksum`, against a plain sequential `readdir` + `lstat` of the same tree (the floor of
//! any walk).
//!
//! sync-core's `Walker` is private; the no-op sync walks the source, sends the listings to the
//! in-process receiver, which stats its copy of every entry and finds nothing to do: the walk
//! and the comparison, without data.
//!
//! Run with `cargo bench -p azsync-benches --bench walk`.

use std::fs;
use std::path::Path;
use std::time::Duration;

use azsync_benches::tree::Plan;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const FILES: usize = 3_000;

/// Entries under `dir`, by readdir and lstat, one at a time.
fn lstat_walk(dir: &Path) -> u64 {
    let mut count = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).expect("read_dir") {
            let path = entry.expect("entry").path();
            let meta = fs::symlink_metadata(&path).expect("lstat");
            count += 1;
            if meta.is_dir() {
                stack.push(path);
            }
        }
    }
    count
}

fn walk(c: &mut Criterion) {
    let tmp = scratch();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let plan = Plan::generate(FILES, 1);
    plan.write(&src).expect("writing the tree");
    sync_core::SyncBuilder::new(&src, &dst)
        .run()
        .expect("first sync");
    let entries = lstat_walk(&src);

    let mut group = c.benchmark_group("walk");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(entries));
    group.bench_function("lstat_floor_3000", |b| b.iter(|| lstat_walk(&src)));
    group.bench_function("noop_sync_3000", |b| {
        b.iter(|| {
            let report = sync_core::SyncBuilder::new(&src, &dst).run().expect("sync");
            assert_eq!(report.files_transferred, 0);
            report
        })
    });
    group.bench_function("noop_sync_checksum_3000", |b| {
        b.iter(|| {
            sync_core::SyncBuilder::new(&src, &dst)
                .checksum(true)
                .run()
                .expect("sync")
        })
    });
    group.finish();
}

/// A scratch directory on tmpfs when there is one.
fn scratch() -> tempfile::TempDir {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        if let Ok(dir) = tempfile::Builder::new()
            .prefix("azsync-bench")
            .tempdir_in(shm)
        {
            return dir;
        }
    }
    tempfile::tempdir().expect("temp dir")
}

criterion_group!(benches, walk);
criterion_main!(benches);
