//! Micro-benchmarks of the delta path: signature of the receiver's copy, diff of the new data
//! against it, and applying the delta, for a 1 MiB and a 20 MiB file with a few KiB edited in
//! several places (the e2e harness's big-edit scenario in miniature); plus the whole engine
//! doing that one file, through its public API.
//!
//! `sync_core`'s `delta` module (block size choice, `signature`, `diff_reader`, the streaming
//! `Patcher`) is private, so signature, diff and apply call `fast_rsync` (the library the
//! engine wraps) with the engine's parameters: block size about the square root of the length,
//! rounded to 8, at least 512; 8 bytes of MD4 per block. The `engine` group goes through
//! `SyncBuilder` (in-process receiver): signature, diff, patch, blake3 check, temp file and
//! rename, as a real sync does them.
//!
//! Run with `cargo bench -p azsync-benches --bench delta`.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use fast_rsync::{Signature, SignatureOptions};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIZES: [(&str, usize); 2] = [("1MiB", 1 << 20), ("20MiB", 20 << 20)];

/// The engine's block size for a file of `len` bytes (sync-core's `delta::block_size`).
fn block_size(len: usize) -> u32 {
    let root = (len as f64).sqrt() as u64;
    let by_count = (len as u64).div_ceil(512 * 1024);
    let size = root.max(by_count).clamp(512, 1 << 20);
    ((size + 7) & !7) as u32
}

fn signature(base: &[u8]) -> Signature {
    Signature::calculate(
        base,
        SignatureOptions {
            block_size: block_size(base.len()),
            crypto_hash_size: 8,
        },
    )
}

/// Random bytes of `len`, and a copy with six ~1 KiB spans overwritten and 100 bytes inserted in
/// the middle.
fn base_and_edit(len: usize) -> (Vec<u8>, Vec<u8>) {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let mut base = vec![0u8; len];
    rng.fill_bytes(&mut base);
    let mut new = base.clone();
    for place in 0..6 {
        let span = rng.gen_range(512..=1536);
        let slot = len / 6;
        let start = (place * slot + rng.gen_range(0..slot)).min(len - span);
        rng.fill_bytes(&mut new[start..start + span]);
    }
    let mut inserted = [0u8; 100];
    rng.fill_bytes(&mut inserted);
    new.splice(len / 2..len / 2, inserted);
    (base, new)
}

fn delta(c: &mut Criterion) {
    let mut group = c.benchmark_group("delta");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    for (label, len) in SIZES {
        let (base, new) = base_and_edit(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("signature", label), &base, |b, base| {
            b.iter(|| signature(black_box(base)).into_serialized())
        });
        let sig = signature(&base);
        group.bench_with_input(BenchmarkId::new("diff", label), &new, |b, new| {
            let mut out = Vec::with_capacity(64 << 10);
            b.iter(|| {
                out.clear();
                // The index is built per file in the engine too.
                fast_rsync::diff(&sig.index(), black_box(new), &mut out).expect("diff");
                out.len()
            })
        });
        let mut delta = Vec::new();
        fast_rsync::diff(&sig.index(), &new, &mut delta).expect("diff");
        group.bench_with_input(BenchmarkId::new("apply", label), &delta, |b, delta| {
            let mut out = Vec::with_capacity(new.len());
            b.iter(|| {
                out.clear();
                fast_rsync::apply(&base, black_box(delta), &mut out).expect("apply");
                out.len()
            })
        });
    }
    group.finish();
}

/// One 20 MiB file with small edits, synced by the engine (in-process receiver) into a copy of
/// its old version: what the e2e big-edit scenario costs without the process and tree around it.
fn engine(c: &mut Criterion) {
    let mut group = c.benchmark_group("engine");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(3));
    let tmp = scratch();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    std::fs::create_dir_all(&src).expect("src");
    let (base, new) = base_and_edit(20 << 20);
    std::fs::write(src.join("big.bin"), &new).expect("write src");
    group.throughput(Throughput::Bytes(new.len() as u64));
    group.bench_function("sync_edited_20MiB", |b| {
        b.iter_batched(
            || {
                let _ = std::fs::remove_dir_all(&dst);
                std::fs::create_dir_all(&dst).expect("dst");
                std::fs::write(dst.join("big.bin"), &base).expect("write dst");
            },
            |()| {
                let report = sync_core::SyncBuilder::new(&src, &dst).run().expect("sync");
                assert_eq!(report.files_transferred, 1);
                report
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

/// A scratch directory on tmpfs when there is one.
fn scratch() -> tempfile::TempDir {
    let shm = std::path::Path::new("/dev/shm");
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

criterion_group!(benches, delta, engine);
criterion_main!(benches);
