//! The floor under a stream restore on this machine: the work every restore
//! must do by the format and the issue's rules, with nothing else around it.
//!
//! * Opening the repository: one Argon2id derivation (the key file's
//!   parameters) and the index.
//! * For every chunk of the entry, in any order, on every core: authenticate
//!   and decrypt it (XChaCha20-Poly1305), decompress it (zstd), re-hash it
//!   (keyed BLAKE3) and compare with its id — `Repo::open_blob_into`, the
//!   call the restore pipeline makes.
//!
//! The chunks are read into memory first and that is not timed: no pack
//! reads, no ordering, no output. A restore of the entry cannot take less
//! than the open plus the fastest of these passes, so this tells whether a
//! speed target for restores is reachable on this machine at all.
//!
//! ```text
//! COFFRE_FLOOR_REPO=DIR COFFRE_FLOOR_NAME=ENTRY COFFRE_PASSWORD=… \
//!     cargo bench --bench restore_floor
//! ```
//! `COFFRE_FLOOR_THREADS` overrides the thread count (default: the cores).
//! Without `COFFRE_FLOOR_REPO` it says how to run it and exits.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use coffre::format::chunklist;
use coffre::format::snapshot::Entry;
use coffre::format::{BlobId, ObjectType};
use coffre::pipeline::{NoProgress, restore_stream};
use coffre::repo::{Repo, pack_path};
use coffre::select::{self, Filter};
use coffre::storage::Location;

/// One occurrence of a chunk in the stream, sealed as it is in its pack.
struct Sealed {
    id: BlobId,
    raw_length: u32,
    bytes: Vec<u8>,
}

/// Passes over all chunks; the fastest counts.
const PASSES: usize = 7;

fn main() {
    let Ok(dir) = std::env::var("COFFRE_FLOOR_REPO") else {
        println!(
            "restore_floor: set COFFRE_FLOOR_REPO=DIR and COFFRE_FLOOR_NAME=ENTRY (a stream \
             entry) and COFFRE_PASSWORD to measure the floor under a restore; skipped"
        );
        return;
    };
    let name = std::env::var("COFFRE_FLOOR_NAME").expect("COFFRE_FLOOR_NAME: the entry to measure");
    let password = std::env::var("COFFRE_PASSWORD").expect("COFFRE_PASSWORD: the repository's");
    let threads = std::env::var("COFFRE_FLOOR_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));

    let location = Location::Local(dir.clone().into());
    let open = || {
        let started = Instant::now();
        let repo =
            Repo::open(&location, || Ok(zeroize::Zeroizing::new(password.clone()))).expect("open");
        let index = repo.index_reader().expect("index");
        (started.elapsed(), repo, index)
    };
    let (_, repo, index) = open();
    let mut opens: Vec<Duration> = (0..PASSES).map(|_| open().0).collect();
    opens.sort();

    let chunks = load_chunks(&repo, &index, &name);
    let plain: u64 = chunks.iter().map(|c| c.raw_length as u64).sum();
    let sealed: u64 = chunks.iter().map(|c| c.bytes.len() as u64).sum();
    let max_chunk = repo.config().chunker.max_size as usize;

    pass(&repo, &chunks, threads, max_chunk); // warm-up: buffers faulted in
    let one_core = pass(&repo, &chunks, 1, max_chunk);
    let mut passes = Vec::new();
    let mut pipeline = Vec::new();
    for _ in 0..PASSES {
        passes.push(pass(&repo, &chunks, threads, max_chunk));
        pipeline.push(through_pipeline(&repo, &index, &name));
    }
    passes.sort();
    pipeline.sort();

    // the rate is of restored bytes, so the open line has none
    let line = |what: &str, times: &[Duration], rate: bool| {
        let best = times[0].as_secs_f64();
        let rate = match rate {
            true => format!("{:>5.0} MB/s", plain as f64 / 1e6 / best),
            false => " ".repeat(10),
        };
        println!(
            "  {what:<48} {best:.3} s  {rate}  (median {:.3} s)",
            times[times.len() / 2].as_secs_f64()
        )
    };
    println!(
        "restore floor of {name:?} in {dir}: {} chunks, {:.1} MB restored from {:.1} MB sealed; \
         best of {PASSES}",
        chunks.len(),
        plain as f64 / 1e6,
        sealed as f64 / 1e6
    );
    line("open: Argon2id and the index", &opens, false);
    line("chunk work on 1 core", &[one_core], true);
    line(&format!("chunk work on {threads} threads"), &passes, true);
    line("floor: open + chunk work", &[opens[0] + passes[0]], true);
    line(
        "restore_stream to a sink (packs read, in order)",
        &pipeline,
        true,
    );
}

/// The entry `name` of the latest snapshot that has one.
fn latest_entry(repo: &Repo, index: &coffre::index::Index, name: &str) -> Entry {
    let rows = index.snapshots().expect("snapshots");
    let filter = Filter {
        name: Some(name.to_string()),
        ..Default::default()
    };
    let row = select::select(&rows, "latest", None, &filter).expect("a snapshot with the entry");
    let snap = repo.load_snapshot(&row.id).expect("snapshot");
    snap.entry(name).expect("the entry").clone()
}

/// Every chunk of the latest snapshot's entry `name`, in stream order,
/// read from its pack into memory.
fn load_chunks(repo: &Repo, index: &coffre::index::Index, name: &str) -> Vec<Sealed> {
    let entry = latest_entry(repo, index, name);
    assert!(
        entry.tree.is_none(),
        "{name:?} is a tree; the floor is for streams"
    );
    let mut ids = entry.chunks.clone();
    for list in &entry.lists {
        let bytes = repo
            .read_blob(index, ObjectType::ChunkList, list)
            .expect("chunk list");
        ids.extend(chunklist::decode(&bytes).expect("chunk list"));
    }
    ids.iter()
        .map(|id| {
            let loc = index.lookup(id).expect("index").expect("indexed chunk");
            let mut bytes = Vec::new();
            repo.storage()
                .read_at_into(
                    &pack_path(&loc.pack),
                    loc.offset,
                    loc.length as usize,
                    &mut bytes,
                )
                .expect("pack read");
            Sealed {
                id: *id,
                raw_length: loc.raw_length,
                bytes,
            }
        })
        .collect()
}

/// The entry through `restore_stream` (what `coffre dump` runs after
/// opening the repository) into `io::sink`; returns the wall time.
fn through_pipeline(repo: &Repo, index: &coffre::index::Index, name: &str) -> Duration {
    let content = latest_entry(repo, index, name).content();
    let started = Instant::now();
    restore_stream(repo, &content, &mut std::io::sink(), &NoProgress).expect("restore");
    started.elapsed()
}

/// Open every chunk once on `threads` threads, each taking the next chunk
/// as it is free; returns the wall time.
fn pass(repo: &Repo, chunks: &[Sealed], threads: usize, max_chunk: usize) -> Duration {
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                let mut out = Vec::with_capacity(max_chunk);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(c) = chunks.get(i) else { break };
                    repo.open_blob_into(ObjectType::Data, &c.id, &c.bytes, c.raw_length, &mut out)
                        .expect("every chunk opens and matches its id");
                }
            });
        }
    });
    started.elapsed()
}
