//! Speed of the building blocks, one core, on two 32 MiB inputs (see
//! `common`): chunking (slice and streaming), keyed hashing, zstd -1/-3
//! compression and decompression, and envelope seal/open.
//!
//! Hashing, compression and sealing run per chunk, on the chunks the default
//! chunker (256 KiB / 1 MiB / 4 MiB) cuts, as the backup pipeline does.
//!
//! `cargo bench --bench primitives` (a few minutes);
//! `cargo bench --bench primitives -- zstd` for one family.

mod common;

use std::hint::black_box;
use std::time::Duration;

use coffre::chunker::{Chunker, chunk_lengths};
use coffre::compress;
use coffre::crypto::{Keys, MasterKey, SecretKey};
use coffre::format::RepoId;
use coffre::format::config::ChunkerParams;
use coffre::format::envelope::{self, Binding, ObjectType};
use criterion::{BenchmarkGroup, Criterion, SamplingMode, Throughput, measurement::WallTime};
use criterion::{criterion_group, criterion_main};

const SIZE: usize = 32 * common::MIB;
const PARAMS: ChunkerParams = ChunkerParams::DEFAULT;

fn keys() -> Keys {
    Keys::derive(&MasterKey(SecretKey::from_bytes([7; 32])))
}

struct Input {
    name: &'static str,
    data: Vec<u8>,
    /// The chunks of `data`, as (start, end).
    chunks: Vec<(usize, usize)>,
}

impl Input {
    fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().map(|&(a, b)| &self.data[a..b])
    }
}

fn load(seed: u64) -> Vec<Input> {
    common::inputs(SIZE)
        .into_iter()
        .map(|(name, data)| {
            let mut pos = 0;
            let chunks = chunk_lengths(PARAMS, seed, &data)
                .into_iter()
                .map(|len| {
                    pos += len;
                    (pos - len, pos)
                })
                .collect();
            Input { name, data, chunks }
        })
        .collect()
}

fn group<'a>(c: &'a mut Criterion, name: &str) -> BenchmarkGroup<'a, WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(SIZE as u64));
    g
}

fn primitives(c: &mut Criterion) {
    let keys = keys();
    let seed = keys.chunker_seed;
    let inputs = load(seed);
    for i in &inputs {
        let mut compressed = Vec::new();
        compress::compress_into(&i.data, 3, &mut compressed);
        eprintln!(
            "input {}: {} bytes, {} chunks (mean {} KiB), zstd -3 ratio {:.1}x on the whole buffer",
            i.name,
            i.data.len(),
            i.chunks.len(),
            i.data.len() / i.chunks.len() / 1024,
            i.data.len() as f64 / compressed.len().max(1) as f64
        );
    }

    let mut g = group(c, "chunk_slice");
    for i in &inputs {
        g.bench_function(i.name, |b| {
            b.iter(|| chunk_lengths(PARAMS, seed, black_box(&i.data)))
        });
    }
    g.finish();

    let mut g = group(c, "chunk_stream");
    for i in &inputs {
        let mut chunker = Chunker::new(PARAMS, seed);
        g.bench_function(i.name, |b| {
            b.iter(|| {
                chunker.reset();
                let mut r: &[u8] = black_box(&i.data);
                let mut n = 0usize;
                while let Some(chunk) = chunker.next_chunk(&mut r).unwrap() {
                    n += chunk.len();
                }
                assert_eq!(n, SIZE);
            })
        });
    }
    g.finish();

    let mut g = group(c, "blake3_keyed");
    for i in &inputs {
        g.bench_function(i.name, |b| {
            b.iter(|| {
                for chunk in i.chunks() {
                    black_box(keys.blob_id(chunk));
                }
            })
        });
    }
    g.finish();

    for level in [1, 3] {
        let mut g = group(c, &format!("zstd{level}_compress"));
        for i in &inputs {
            let mut out = Vec::with_capacity(8 * common::MIB);
            g.bench_function(i.name, |b| {
                b.iter(|| {
                    for chunk in i.chunks() {
                        out.clear();
                        black_box(compress::compress_into(chunk, level, &mut out));
                    }
                })
            });
        }
        g.finish();

        let mut g = group(c, &format!("zstd{level}_decompress"));
        for i in &inputs {
            let frames: Vec<Vec<u8>> = i
                .chunks()
                .map(|chunk| {
                    let mut out = Vec::new();
                    // frames that did not pay are still real zstd frames here
                    if !compress::compress_into(chunk, level, &mut out) {
                        out = zstd::bulk::compress(chunk, level).unwrap();
                    }
                    out
                })
                .collect();
            let cap = PARAMS.max_size as usize;
            g.bench_function(i.name, |b| {
                b.iter(|| {
                    for f in &frames {
                        black_box(compress::decompress(f, cap).unwrap());
                    }
                })
            });
        }
        g.finish();
    }

    let repo_id = RepoId([0; 16]);
    let binding = Binding {
        repo_id: &repo_id,
        object_type: ObjectType::Data,
        object_id: &[0; 32],
    };
    for (label, level) in [("seal_zstd3", Some(3)), ("seal_raw", None)] {
        let mut g = group(c, label);
        for i in &inputs {
            g.bench_function(i.name, |b| {
                b.iter(|| {
                    for chunk in i.chunks() {
                        black_box(envelope::seal(
                            &keys.encryption,
                            binding,
                            chunk,
                            level,
                            None,
                        ));
                    }
                })
            });
        }
        g.finish();
    }
    for (label, level) in [("open_zstd3", Some(3)), ("open_raw", None)] {
        let mut g = group(c, label);
        for i in &inputs {
            let sealed: Vec<Vec<u8>> = i
                .chunks()
                .map(|chunk| envelope::seal(&keys.encryption, binding, chunk, level, None))
                .collect();
            let cap = PARAMS.max_size as usize;
            g.bench_function(i.name, |b| {
                b.iter(|| {
                    for s in &sealed {
                        black_box(envelope::open(&keys.encryption, binding, s, cap).unwrap());
                    }
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, primitives);
criterion_main!(benches);
