//! The whole write and read paths through the library, both cores: a 256 MiB
//! stream (dump-like and high-entropy, see `common`) backed up into a fresh
//! repository, backed up again unchanged (every chunk deduplicated), and
//! restored to `io::sink` (every chunk read, authenticated, decompressed and
//! re-hashed).
//!
//! Repositories live in temporary directories (under $TMPDIR); packs are
//! fsynced as in real use. `cargo bench --bench pipeline` (a few minutes).

mod common;

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use coffre::format::chunklist::Content;
use coffre::pipeline::{BackupSession, NoProgress, restore_stream};
use coffre::repo::{InitOptions, Repo};
use coffre::storage::Location;
use criterion::{BatchSize, Criterion, SamplingMode, Throughput};
use criterion::{criterion_group, criterion_main};
use tempfile::TempDir;

const SIZE: usize = 256 * common::MIB;

fn fresh_repo() -> (TempDir, Repo) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let opts = InitOptions {
        kdf_memory_kib: 8192,
        kdf_iterations: 1,
        kdf_parallelism: 1,
        ..Default::default()
    };
    Repo::init(&Location::Local(path.clone()), "pw", &opts).unwrap();
    let repo = open(&path);
    (dir, repo)
}

fn open(path: &Path) -> Repo {
    let location = Location::Local(path.to_path_buf());
    let repo = Repo::open(&location, || Ok(zeroize::Zeroizing::new("pw".to_string()))).unwrap();
    repo.lock(false, "bench", std::time::Duration::ZERO)
        .unwrap();
    repo
}

/// One backup of `data` as a stream entry; returns the entry's content.
fn backup(repo: &Repo, data: &[u8]) -> Content {
    let mut s = BackupSession::new(repo, &NoProgress);
    let mut r: &[u8] = data;
    s.stream("bench", &mut r, None, Default::default()).unwrap();
    let (_, snap) = s.commit(vec![], None).unwrap();
    let e = &snap.entries[0];
    assert_eq!(e.size, data.len() as u64);
    Content {
        chunks: e.chunks.clone(),
        lists: e.lists.clone(),
    }
}

fn dir_size(p: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(p).unwrap() {
        let e = e.unwrap();
        let md = e.metadata().unwrap();
        n += if md.is_dir() {
            dir_size(&e.path())
        } else {
            md.len()
        };
    }
    n
}

fn pipeline(c: &mut Criterion) {
    let inputs = common::inputs(SIZE);
    let mut g = c.benchmark_group("pipeline");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(15))
        .sampling_mode(SamplingMode::Flat)
        .throughput(Throughput::Bytes(SIZE as u64));

    for (name, data) in &inputs {
        // first backup into an empty repository; the repository is made (and
        // later deleted) outside the timed part
        g.bench_function(format!("backup_new/{name}"), |b| {
            b.iter_batched(
                fresh_repo,
                |(dir, repo)| {
                    black_box(backup(&repo, data));
                    (dir, repo)
                },
                BatchSize::PerIteration,
            )
        });

        // the same input again and again: every chunk is already stored
        let (dir, repo) = fresh_repo();
        let content = backup(&repo, data);
        eprintln!(
            "{name}: {} bytes -> repository of {} bytes at zstd level {} ({} inline chunks, {} chunk lists)",
            data.len(),
            dir_size(dir.path()),
            repo.config().zstd_level,
            content.chunks.len(),
            content.lists.len()
        );
        g.bench_function(format!("backup_dedup/{name}"), |b| {
            b.iter(|| black_box(backup(&repo, data)))
        });

        g.bench_function(format!("restore_sink/{name}"), |b| {
            b.iter(|| {
                let n = restore_stream(&repo, &content, &mut std::io::sink(), &NoProgress).unwrap();
                assert_eq!(n, SIZE as u64);
            })
        });
        drop(repo);
        drop(dir);
    }
    g.finish();
}

criterion_group!(benches, pipeline);
criterion_main!(benches);
