//! Micro-benchmarks of the hashing that the engine leans on: blake3 of whole buffers, one thread
//! and (for the large buffer) rayon across all cores.
//!
//! Run with `cargo bench -p azsync-benches --bench hashing`. The engine's other hot parts have
//! their own files: `delta` (signature, diff, apply), `codec` (frames), `walk`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

const SIZES: [(&str, usize); 2] = [("1MB", 1 << 20), ("16MB", 16 << 20)];

fn buffer(len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    ChaCha8Rng::seed_from_u64(42).fill_bytes(&mut buf);
    buf
}

fn blake3_hashing(c: &mut Criterion) {
    let mut group = c.benchmark_group("blake3");
    group
        .sample_size(20)
        .warm_up_time(std::time::Duration::from_millis(300))
        .measurement_time(std::time::Duration::from_secs(2));
    for (label, len) in SIZES {
        let data = buffer(len);
        group.throughput(Throughput::Bytes(len as u64));
        group.bench_with_input(BenchmarkId::new("hash", label), &data, |b, data| {
            b.iter(|| blake3::hash(black_box(data)))
        });
        if len >= 16 << 20 {
            group.bench_with_input(BenchmarkId::new("update_rayon", label), &data, |b, data| {
                b.iter(|| {
                    blake3::Hasher::new()
                        .update_rayon(black_box(data))
                        .finalize()
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, blake3_hashing);
criterion_main!(benches);
