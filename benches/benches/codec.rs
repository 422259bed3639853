//! Micro-benchmarks of the frame codec: encoding and decoding the messages that dominate a
//! session, a directory's `Batch` (20 entries, the harness tree's typical directory, and 4,096,
//! the most one batch holds) and a full `FileChunk` (256 KiB of file data); and a stream of
//! frames written with `FrameWriter` and read back with `FrameReader`.
//!
//! Run with `cargo bench -p azsync-benches --bench codec`.

use std::hint::black_box;
use std::io::Cursor;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sync_core::protocol::{self, Batch, FrameReader, FrameWriter, Message, DATA_CHUNK};
use sync_core::{Entry, Kind, Mtime};

fn batch(entries: usize) -> Message {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let entries = (0..entries)
        .map(|i| {
            let kind = match i % 50 {
                0 => Kind::Dir,
                1 => Kind::Symlink,
                _ => Kind::File,
            };
            Entry {
                name: format!("notes_{i:06}.md").into_bytes(),
                kind,
                size: if kind == Kind::File {
                    rng.gen_range(100..8192)
                } else {
                    0
                },
                mtime: Mtime {
                    sec: 1_704_067_200 + rng.gen_range(0..31_536_000),
                    nsec: rng.gen_range(0..1_000_000_000),
                },
                mode: 0o644,
                target: if kind == Kind::Symlink {
                    b"main_000001.rs".to_vec()
                } else {
                    Vec::new()
                },
                hash: None,
            }
        })
        .collect();
    Message::Batch(Batch {
        id: 42,
        dir: b"projects/lib-12/src-340".to_vec(),
        dir_mode: 0o755,
        dir_mtime: Mtime {
            sec: 1_704_067_200,
            nsec: 5,
        },
        first: true,
        last: true,
        entries,
    })
}

fn file_chunk() -> Message {
    let mut data = vec![0u8; DATA_CHUNK];
    ChaCha8Rng::seed_from_u64(4).fill_bytes(&mut data);
    Message::FileChunk {
        batch: 42,
        index: 7,
        data,
    }
}

fn codec(c: &mut Criterion) {
    let mut group = c.benchmark_group("codec");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1));
    let messages = [
        ("batch_20", batch(20)),
        ("batch_4096", batch(4096)),
        ("file_chunk_256KiB", file_chunk()),
    ];
    for (label, msg) in &messages {
        let frame = protocol::encode(msg).expect("encode");
        group.throughput(Throughput::Bytes(frame.len() as u64));
        group.bench_with_input(BenchmarkId::new("encode", label), msg, |b, msg| {
            b.iter(|| protocol::encode(black_box(msg)).expect("encode"))
        });
        // `encode` gives the frame (a 4-byte length, then the body); `decode` takes the body.
        let body = &frame[4..];
        group.bench_with_input(BenchmarkId::new("decode", label), body, |b, body| {
            b.iter(|| protocol::decode(black_box(body)).expect("decode"))
        });
    }
    // A stream: 64 directories of 20 entries, each with 4 chunks of file data.
    let stream: Vec<Message> = (0..64)
        .flat_map(|_| std::iter::once(batch(20)).chain(std::iter::repeat_n(file_chunk(), 4)))
        .collect();
    let mut written = Vec::new();
    {
        let mut writer = FrameWriter::new(&mut written);
        for msg in &stream {
            writer.send(msg).expect("send");
        }
        writer.flush().expect("flush");
    }
    group.throughput(Throughput::Bytes(written.len() as u64));
    group.bench_function("stream_write", |b| {
        let mut sink = Vec::with_capacity(written.len());
        b.iter(|| {
            sink.clear();
            let mut writer = FrameWriter::new(&mut sink);
            for msg in &stream {
                writer.send(black_box(msg)).expect("send");
            }
            writer.flush().expect("flush");
            writer.bytes()
        })
    });
    group.bench_function("stream_read", |b| {
        b.iter(|| {
            let mut reader = FrameReader::new(Cursor::new(black_box(&written)));
            let mut n = 0;
            while let Some(msg) = reader.recv().expect("recv") {
                n += matches!(msg, Message::FileChunk { .. }) as usize;
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);
